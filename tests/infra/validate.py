"""Validates Tandem's deployment files offline; tests/tests/infra.rs runs it under scripts/test.

    validate.py manifests INFRA_DIR     Kubernetes manifests and the compose file
    validate.py dockerignore FILE       the build context that FILE (.dockerignore) leaves

`manifests`:
- Kubernetes: renders INFRA_DIR/kustomization.yaml as kustomize would for the fields it uses
  (resources, namespace, configMapGenerator; any other field is an error, so a new one is
  never skipped silently) and validates every object it yields, and every other manifest
  under INFRA_DIR/k8s/, against the OpenAPI schemas of each version in KUBERNETES_VERSIONS
  that PyPI's kubernetes-validate bundles, strictly: an unknown field, a wrong type, a
  missing required field or a kind without a schema is an error.
- Compose: interpolates INFRA_DIR/compose/compose.yaml as `docker compose` does (`${VAR}`,
  `${VAR:-default}`, `${VAR:?message}`, `$$`), with a placeholder for every variable, and
  validates it against the compose-spec JSON schema vendored beside this file (README.md
  there says where it comes from). A `${VAR}` with neither a default nor `?` is an error:
  unset, it would silently become empty.

`dockerignore`: the patterns, matched as Docker matches them, must leave out the paths in
MUST_EXCLUDE and keep the paths in MUST_KEEP (what infra/docker/Dockerfile builds from).

Prints a JSON summary on stdout; each problem on stderr, then exits 1.
"""

import json
import pathlib
import re
import sys

import jsonschema
import kubernetes_validate
import yaml

# The oldest Kubernetes the manifests claim to run on (README: "Kubernetes 1.30 or later")
# and the newest whose schemas kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.30", "1.37")

HERE = pathlib.Path(__file__).resolve().parent
COMPOSE_SCHEMA = HERE / "compose-spec.json"

# Kinds that have no namespace, so a kustomization's `namespace` leaves them alone.
CLUSTER_SCOPED = {"Namespace", "RuntimeClass", "ClusterRole", "ClusterRoleBinding",
                  "PersistentVolume", "StorageClass", "PriorityClass"}

# Paths relative to the repository root, as the build context sees them.
MUST_EXCLUDE = [
    "target/debug/tandem",
    "target/test-venv/bin/python",
    ".venv-kernel/bin/python",
    ".venv-anything/bin/python",
    "client/web/node_modules/yjs/package.json",
    "client/web/dist/index.html",
    "tests/interop/node/node_modules/yjs/package.json",
    ".git/HEAD",
    "tandem-data/tandem.db",
    "tandem-kernels/k-1-1/x",
    "tandem-drive/u/x",
    ".gpu/tandem",
    "infra/compose/.env",
]
MUST_KEEP = [
    "Cargo.toml",
    "Cargo.lock",
    ".cargo/config.toml",
    "crdt/Cargo.toml",
    "services/tandem/src/main.rs",
    "services/kernel/python/requirements.txt",
    "scripts/setup-python",
    "client/web/package.json",
    "client/web/package-lock.json",
    "client/web/src/main.ts",
    "bench/src/target.rs",
    "tests/Cargo.toml",
]


class Problems:
    """Collects problems; each names its file and object."""

    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


def load_documents(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def describe(doc):
    if not isinstance(doc, dict):
        return "(not a mapping)"
    name = (doc.get("metadata") or {}).get("name", "?")
    return f"{doc.get('kind', '?')}/{name}"


def render_kustomization(infra, problems):
    """The objects `kustomize build INFRA` yields, as (source, object) pairs."""
    path = infra / "kustomization.yaml"
    where = str(path)
    (kustomization,) = load_documents(path)
    known = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator"}
    for field in sorted(set(kustomization) - known):
        problems.add(where, f"field `{field}` is not rendered by {pathlib.Path(__file__).name}:"
                            " teach it that field before using it")
    namespace = kustomization.get("namespace")
    rendered = []
    for resource in kustomization.get("resources", []):
        file = infra / resource
        if not file.is_file():
            problems.add(where, f"resource {resource} is missing")
            continue
        for doc in load_documents(file):
            if isinstance(doc, dict) and namespace and doc.get("kind") not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
            rendered.append((str(file), doc))
    for generator in kustomization.get("configMapGenerator", []):
        for field in sorted(set(generator) - {"name", "files", "literals"}):
            problems.add(where, f"configMapGenerator field `{field}` is not rendered")
        data = {}
        for entry in generator.get("files", []):
            key, _, source = entry.rpartition("=")
            source_path = infra / source
            if not source_path.is_file():
                problems.add(where, f"configMapGenerator {generator.get('name')}: {source} is missing")
                continue
            data[key or source_path.name] = source_path.read_text()
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": generator.get("name")}, "data": data}
        if namespace:
            config_map["metadata"]["namespace"] = namespace
        rendered.append((where, config_map))
    return rendered


def validate_kubernetes(source, doc, problems):
    where = f"{source}: {describe(doc)}"
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        problems.add(where, "not a Kubernetes object (apiVersion and kind)")
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path) or "(top)"
            problems.add(f"{where} (Kubernetes {version})", f"{path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.add(f"{where} (Kubernetes {version})", error.message)


def check_manifests(infra):
    problems = Problems()
    rendered = render_kustomization(infra, problems)
    names = [describe(doc) for _, doc in rendered]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.add(str(infra / "kustomization.yaml"), f"{name} is defined twice")
    # Manifests the kustomization leaves out (secret.example.yaml) must be valid too.
    listed = {source for source, _ in rendered}
    objects = list(rendered)
    for path in sorted((infra / "k8s").glob("*.y*ml")):
        if str(path) not in listed:
            objects.extend((str(path), doc) for doc in load_documents(path))
    for source, doc in objects:
        validate_kubernetes(source, doc, problems)

    compose_path = infra / "compose" / "compose.yaml"
    compose, variables = interpolate(load_documents(compose_path)[0], str(compose_path), problems)
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    for error in jsonschema.Draft7Validator(schema).iter_errors(compose):
        path = "/".join(str(p) for p in error.absolute_path) or "(top)"
        problems.add(f"{compose_path} (compose-spec)", f"{path}: {error.message}")

    summary = {
        "kubernetes": {
            "versions": list(KUBERNETES_VERSIONS),
            "objects": [{"source": s, "kind": d.get("kind"), "name": (d.get("metadata") or {}).get("name")}
                        for s, d in objects if isinstance(d, dict)],
        },
        "compose": {
            "file": str(compose_path),
            "services": sorted((compose.get("services") or {}).keys()),
            "required": sorted(v for v, kind in variables.items() if kind == "required"),
            "defaulted": sorted(v for v, kind in variables.items() if kind == "default"),
        },
    }
    return summary, problems


# `$$`, `${NAME}`, `${NAME<op>word}` (op: :- - :? ? :+ +) or `$NAME`, as compose reads them.
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<word>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)
PLACEHOLDER = "placeholder-0123456789abcdef"


def interpolate(value, where, problems, variables=None, path=""):
    """`value` with every variable replaced as compose would with all of them set; returns it
    and {variable: "required" | "default" | "plain"}."""
    variables = {} if variables is None else variables
    if isinstance(value, dict):
        return {k: interpolate(v, where, problems, variables, f"{path}/{k}")[0]
                for k, v in value.items()}, variables
    if isinstance(value, list):
        return [interpolate(v, where, problems, variables, f"{path}/{i}")[0]
                for i, v in enumerate(value)], variables
    if not isinstance(value, str):
        return value, variables

    def replace(match):
        if match.group("escaped"):
            return "$"
        if match.group("invalid") is not None:
            problems.add(where, f"{path}: invalid interpolation in {value!r}")
            return ""
        name = match.group("braced") or match.group("bare")
        op = match.group("op") or ""
        word = match.group("word") or ""
        if "$" in word:
            problems.add(where, f"{path}: nested interpolation in {value!r} is not checked here")
        if "?" in op:
            variables[name] = "required"
            if not word.strip():
                problems.add(where, f"{path}: ${{{name}{op}}} needs a message saying what to set")
        elif "-" in op:
            variables.setdefault(name, "default")
        elif "+" in op:
            variables.setdefault(name, "default")
            return word
        else:
            variables.setdefault(name, "plain")
            problems.add(where, f"{path}: ${{{name}}} has neither a default nor `?`: unset, it "
                                "would silently be empty")
        return PLACEHOLDER

    return INTERPOLATION.sub(replace, value), variables


def dockerignore_matcher(text):
    """A function telling whether Docker leaves a path out of the build context, with the
    rules of moby's patternmatcher: patterns are cleaned paths from the context's root, `*`
    and `?` stay within one path segment, `**` spans any number of them, a pattern that
    matches a folder leaves out everything below it, `!` keeps again, and the last matching
    pattern wins."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line[1:].strip() if keep else line
        pattern = str(pathlib.PurePosixPath("/" + pattern))[1:] or "."
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((re.compile(f"^{regex}$"), keep))

    def excluded(path):
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for regex, keep in rules:
            if any(regex.match(prefix) for prefix in prefixes):
                result = not keep
        return result

    return excluded


def check_dockerignore(path):
    problems = Problems()
    excluded = dockerignore_matcher(path.read_text())
    for file in MUST_EXCLUDE:
        if not excluded(file):
            problems.add(str(path), f"{file} would be sent to the build context")
    for file in MUST_KEEP:
        if excluded(file):
            problems.add(str(path), f"{file} would be left out, but the image is built from it")
    summary = {"excluded": [f for f in MUST_EXCLUDE if excluded(f)],
               "kept": [f for f in MUST_KEEP if not excluded(f)]}
    return summary, problems


def main(argv):
    if len(argv) != 3 or argv[1] not in ("manifests", "dockerignore"):
        print(__doc__, file=sys.stderr)
        return 2
    target = pathlib.Path(argv[2])
    if argv[1] == "manifests":
        summary, problems = check_manifests(target)
    else:
        summary, problems = check_dockerignore(target)
    print(json.dumps(summary, indent=1))
    for problem in problems.items:
        print(problem, file=sys.stderr)
    if problems.items:
        print(f"{len(problems.items)} problem(s) in {target}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
