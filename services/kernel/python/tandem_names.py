"""Which names a cell defines and which it uses, read from its syntax tree (as marimo does).

Compiled into the `tandem kernel` binary; the worker calls `report(code, peers)` before it runs
a cell whose manager asked for it, and sends the answer as the protocol's `names` event. The
session uses it to mark cells stale and to warn about names that come from cells below or
from cells never run.

- `defs`: the names the cell binds at module level: assignments (tuple and starred targets,
  augmented, annotated with a value, walrus), `import`s, `def` and `class`, `for` / `with` /
  `except` targets, match captures, names a function declares `global` and assigns, and
  `del` (it changes what the name is).
- `uses`: the module-level names the cell reads before binding them itself: loads, the base
  of an attribute or subscript assignment (`a.b = 1` uses `a`), augmented targets (`x += 1`
  uses and defines `x`), `del`. Function and lambda bodies run later, so a free name there is
  a use only if the cell binds it nowhere; class bodies and comprehensions run at once and
  have their own scopes (a comprehension's targets are local to it).

Code that is not plain Python goes through IPython's input transformation, as the shell does,
so magics and `!cmd` lines do not break the parse (`x = !ls` defines `x`; what runs inside a
magic's string is not seen). Code that parses as it is is left alone, as IPython's transforms
leave valid Python alone (each rewrites a line that would not parse: magics, `!`, `?`,
prompts, leading indentation); so the transformation, the costly part, runs only for IPython
syntax. Code that does not parse either way gives `None`.

Every run of a cell analyses it and all its peers, so answers are kept by source: a notebook
whose cells did not change costs dictionary look-ups, not parses.
"""

import ast
import json

_transformer = None


def _transform(code):
    global _transformer
    try:
        if _transformer is None:
            from IPython.core.inputtransformer2 import TransformerManager

            _transformer = TransformerManager()
        return _transformer.transform_cell(code)
    except Exception:  # noqa: BLE001 - a transformer bug must not stop the cell
        return code


# Answers by source, never changed once made; cleared whole when full (cells are few).
_answers = {}
_MAX_ANSWERS = 4096


def analyze(code):
    """`{"defs": [...], "uses": [...]}` (sorted) for one cell's source, or None."""
    try:
        return _answers[code]
    except KeyError:
        pass
    answer = _analyze(code)
    if len(_answers) >= _MAX_ANSWERS:
        _answers.clear()
    _answers[code] = answer
    return answer


def _parse(code):
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        pass
    try:
        return ast.parse(_transform(code))
    except (SyntaxError, ValueError):
        return None


def _analyze(code):
    tree = _parse(code)
    if tree is None:
        return None
    analyzer = _Analyzer()
    analyzer.run(tree)
    return {"defs": sorted(analyzer.defs), "uses": sorted(analyzer.uses)}


def report(code, peers):
    """The protocol's `names` event for a cell and the peers' sources, as a JSON line."""
    event = {
        "type": "names",
        "cell": analyze(code),
        "peers": [analyze(peer) for peer in peers],
    }
    return json.dumps(event, separators=(",", ":"))


class _Scope:
    def __init__(self, kind, bound=(), deferred=False):
        # "module", "function", "class" or "comprehension"
        self.kind = kind
        self.bound = set(bound)
        self.globals = set()
        # Code in a function body runs later, when every module binding of the cell exists.
        self.deferred = deferred


class _Analyzer(ast.NodeVisitor):
    def __init__(self):
        self.defs = set()
        self.uses = set()
        # Free names of function bodies: uses unless the cell binds them anywhere.
        self.lazy = set()
        self.scopes = [_Scope("module")]

    def run(self, tree):
        for statement in tree.body:
            self.visit(statement)
        self.uses |= self.lazy - self.defs

    # --- names -----------------------------------------------------------------------------

    def load(self, name):
        scopes = self.scopes
        innermost = scopes[-1]
        if name in innermost.globals:
            return self._load_module(name, innermost.deferred)
        for depth, scope in enumerate(reversed(scopes)):
            if scope.kind == "module":
                return self._load_module(name, innermost.deferred)
            if scope.kind == "class" and depth > 0:
                continue  # class bodies are invisible to the scopes nested in them
            if name in scope.bound:
                return

    def _load_module(self, name, deferred):
        if name in self.scopes[0].bound:
            return
        if deferred:
            self.lazy.add(name)
        else:
            self.uses.add(name)

    def store(self, name, walrus=False):
        scopes = self.scopes
        index = len(scopes) - 1
        if walrus:
            while scopes[index].kind == "comprehension":
                index -= 1
        scope = scopes[index]
        if scope.kind == "module" or name in scope.globals:
            self.defs.add(name)
            scopes[0].bound.add(name)
        else:
            scope.bound.add(name)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.load(node.id)
        elif isinstance(node.ctx, ast.Store):
            self.store(node.id)
        else:  # Del: reads the binding and changes it
            self.load(node.id)
            self.store(node.id)

    # --- statements whose parts run out of field order -------------------------------------

    def visit_Assign(self, node):
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.load(node.target.id)
            self.store(node.target.id)
        else:
            self.visit(node.target)

    def visit_AnnAssign(self, node):
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self.visit(node.target)
        elif not isinstance(node.target, ast.Name):
            self.visit(node.target)

    def visit_NamedExpr(self, node):
        self.visit(node.value)
        self.store(node.target.id, walrus=True)

    def visit_For(self, node):
        self.visit(node.iter)
        self.visit(node.target)
        for statement in node.body + node.orelse:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_With(self, node):
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
        for statement in node.body:
            self.visit(statement)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node):
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.store(node.name)
        for statement in node.body:
            self.visit(statement)

    def visit_Import(self, node):
        for alias in node.names:
            self.store(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node):
        for alias in node.names:
            if alias.name != "*":
                self.store(alias.asname or alias.name)

    def visit_Global(self, node):
        scope = self.scopes[-1]
        if scope.kind != "module":
            scope.globals.update(node.names)
            scope.bound.difference_update(node.names)

    def visit_Nonlocal(self, node):
        pass  # the names stay bound in the enclosing function, as `_bound` found them

    # match captures
    def visit_MatchAs(self, node):
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.store(node.name)

    def visit_MatchStar(self, node):
        if node.name:
            self.store(node.name)

    def visit_MatchMapping(self, node):
        for key in node.keys:
            self.visit(key)
        for pattern in node.patterns:
            self.visit(pattern)
        if node.rest:
            self.store(node.rest)

    # --- scopes ----------------------------------------------------------------------------

    def _arguments(self, args):
        """Defaults and annotations run where the function is defined."""
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.visit(arg.annotation)

    @staticmethod
    def _parameters(args):
        every = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
        return {arg.arg for arg in every if arg is not None}

    def _function_body(self, parameters, body, declared):
        scope = _Scope("function", parameters | _bound(body), deferred=True)
        scope.globals = declared
        scope.bound -= declared
        self.scopes.append(scope)
        for statement in body:
            self.visit(statement)
        self.scopes.pop()

    def visit_FunctionDef(self, node):
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._arguments(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self.store(node.name)
        self._function_body(self._parameters(node.args), node.body, _globals(node.body))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._arguments(node.args)
        scope = _Scope("function", self._parameters(node.args), deferred=True)
        self.scopes.append(scope)
        self.visit(node.body)
        self.scopes.pop()

    def visit_ClassDef(self, node):
        for expression in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(expression)
        scope = _Scope("class", deferred=self.scopes[-1].deferred)
        self.scopes.append(scope)
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()
        self.store(node.name)

    def _comprehension(self, node, elements):
        generators = node.generators
        # The first iterable is evaluated in the enclosing scope.
        self.visit(generators[0].iter)
        scope = _Scope("comprehension", deferred=self.scopes[-1].deferred)
        self.scopes.append(scope)
        for index, generator in enumerate(generators):
            if index > 0:
                self.visit(generator.iter)
            self.visit(generator.target)
            for condition in generator.ifs:
                self.visit(condition)
        for element in elements:
            self.visit(element)
        self.scopes.pop()

    def visit_ListComp(self, node):
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_ListComp
    visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node):
        self._comprehension(node, [node.key, node.value])


def _globals(body):
    """The names a function body declares `global` (not looking into nested scopes)."""
    names = set()
    for node in _walk_scope(body):
        if isinstance(node, ast.Global):
            names.update(node.names)
    return names


def _bound(body):
    """The names a function body binds (its locals), not looking into nested scopes."""
    names = set()
    for node in _walk_scope(body):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, ast.NamedExpr):
            names.add(node.target.id)
    return names


_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def _walk_scope(body):
    """The nodes of one scope: nested functions and classes show only their own node (their
    name binds here); comprehensions only their walrus targets, which bind here too."""
    stack = list(body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _NESTED):
            if not isinstance(node, ast.Lambda):
                stack.extend(node.decorator_list)
            continue
        if isinstance(node, _COMPREHENSIONS):
            stack.extend(n for n in ast.walk(node) if isinstance(n, ast.NamedExpr))
            continue
        stack.extend(ast.iter_child_nodes(node))
