"""IPython inside a Tandem kernel worker.

Compiled into the `tandem kernel` binary and run by its embedded CPython. The worker calls
`start(venv)` once, then `Kernel.execute(code)` per cell. Everything a cell shows leaves
through the native module `_tandem_kernel` (registered by the worker before this runs):

- `emit(json_line)`: one protocol event (display data, results, errors, clear_output);
- `write_stdout(text)` / `write_stderr(text)`: stream text, coalesced on the Rust side;
- `flush()`: send pending stream text now;
- `read_input(prompt, password)`: ask whoever ran the cell for a line (`input()`, `getpass`).

`Kernel.complete` and `Kernel.inspect` answer code intelligence requests (IPython's completer
with jedi, and its inspector); the worker calls them from a helper thread, so they work while
a cell runs. Their cursors count UTF-16 code units, as the editor does.

IPython does the Jupyter behaviour (magics, `!cmd`, display hooks, rich reprs, tracebacks);
this module only points its outputs at the protocol, like ipykernel's ZMQ shell does.
"""

import atexit
import base64
import builtins
import faulthandler
import io
import json
import math
import os
import re
import signal
import site
import sys
import threading

import _tandem_kernel as _native

# Figures render inline, as in Jupyter. The backend module hooks itself into the shell when
# matplotlib is first imported, so kernels that never plot never pay for importing it.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

SETUP_HINT = "run scripts/setup-python to create or repair it"


def _json_default(value):
    """JSON for what display formatters may hand us besides plain JSON types."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        # Image formatters may return raw bytes; nbformat stores them base64-encoded.
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "tolist"):  # numpy scalars and arrays in metadata
        return value.tolist()
    return str(value)


def _finite(value):
    """Replaces NaN and infinities, which JSON cannot carry, by null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _emit(event):
    try:
        line = json.dumps(event, default=_json_default, allow_nan=False, separators=(",", ":"))
    except ValueError:
        line = json.dumps(_finite(event), default=_json_default, separators=(",", ":"))
    _native.emit(line)


class OutStream(io.TextIOBase):
    """`sys.stdout` / `sys.stderr` of the kernel: text goes to the notebook."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, name, write):
        super().__init__()
        self.name = f"<{name}>"
        self._write = write

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._write(text)
        return len(text)

    def writable(self):
        return True

    def isatty(self):
        return False

    def flush(self):
        # Delivery is already timely (the worker sends pending text within 50 ms) and
        # ordered (any other event flushes first); forcing a send per flush would undo
        # the coalescing for `print(..., flush=True)` loops.
        pass


def _use_venv(venv):
    """Makes the embedded interpreter see the venv as `venv/bin/python` would."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site_packages = os.path.join(venv, "lib", version, "site-packages")
    if not os.path.isdir(site_packages):
        raise RuntimeError(
            f"the kernel venv {venv} has no lib/{version}/site-packages (it is missing, or "
            f"was built from another Python than the embedded {sys.version.split()[0]}): "
            f"{SETUP_HINT}"
        )
    # The embedded interpreter starts with the system's site directories (Debian's
    # dist-packages); a venv's own python would not see them, and neither should cells.
    sys.path[:] = [p for p in sys.path if not p.endswith(("site-packages", "dist-packages"))]
    site.addsitedir(site_packages)  # also runs the venv's .pth files
    # Like `python -m ...`: modules next to the notebook's working directory import.
    sys.path.insert(0, "")
    sys.prefix = sys.exec_prefix = venv
    # `%pip install`, `!python` and subprocess users run sys.executable: it must be the
    # venv's interpreter, not the kernel binary that embeds this one.
    sys.executable = os.path.join(venv, "bin", "python")
    sys.argv = [""]


# What `getpass` echoes in place of the password, as Colab shows it.
PASSWORD_ECHO = "\u00b7" * 10

# Most completions sent for one request: the editor shows a handful, and jedi can list
# thousands (`import ` + Tab).
MAX_COMPLETIONS = 500

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _read_stdin(prompt, password):
    """Asks whoever ran the cell for one line, waits for it (interrupts still work), and
    echoes the prompt and the answer into the cell's output as a terminal would."""
    prompt = "" if prompt is None else str(prompt)
    value = _native.read_input(prompt, bool(password))
    sys.stdout.write(prompt + (PASSWORD_ECHO if password else value) + "\n")
    return value


def _input(prompt=""):
    """`input()` in a notebook: the prompt appears under the cell for whoever ran it."""
    return _read_stdin(prompt, False)


def _getpass(prompt="Password: ", stream=None):
    """`getpass.getpass()` in a notebook: as `input()`, with the answer hidden."""
    return _read_stdin(prompt, True)


def _after_dot(code, completion):
    """`.path` replacing `.pa` → `path` replacing `pa`."""
    from IPython.core.completer import Completion

    if completion.text.startswith(".") and code[completion.start : completion.start + 1] == ".":
        return Completion(
            completion.start + 1,
            completion.end,
            completion.text[1:],
            type=completion.type,
            _origin=getattr(completion, "_origin", ""),
            signature=completion.signature,
        )
    return completion


def _utf16_to_index(text, offset):
    """The code point index of a UTF-16 offset into `text` (clamped to the text)."""
    units = 0
    for index, char in enumerate(text):
        if units >= offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def _index_to_utf16(text, index):
    """The UTF-16 offset of code point `index` of `text`."""
    return sum(2 if ord(char) > 0xFFFF else 1 for char in text[:index])


def start(venv):
    """Sets up the interpreter and the IPython shell, sends `ready`, returns the Kernel."""
    _use_venv(venv)
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    # Crash reasons: on SIGSEGV & co. the Python stacks go to fd 2, the manager's log.
    faulthandler.enable(file=sys.__stderr__, all_threads=True)
    # pyo3 starts CPython without its signal handlers; interrupts must raise
    # KeyboardInterrupt in the running cell, as in Jupyter.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    sys.stdout = OutStream("stdout", _native.write_stdout)
    sys.stderr = OutStream("stderr", _native.write_stderr)
    builtins.input = _input
    import getpass

    getpass.getpass = _getpass

    try:
        import IPython
    except ImportError as error:
        raise RuntimeError(
            f"IPython is not importable from the kernel venv {venv} ({error}): {SETUP_HINT}"
        ) from error

    shell = _make_shell()
    _emit(
        {
            "type": "ready",
            "python": sys.version,
            "ipython": IPython.__version__,
            "pid": os.getpid(),
        }
    )
    return Kernel(shell)


class Kernel:
    """What the worker calls: one method per request."""

    def __init__(self, shell):
        self.shell = shell
        # Jedi's first completion in a fresh process parses the standard library's stubs
        # (seconds, tens of MB), so it warms up in the background on the first request, and
        # IPython's own completer (live objects, milliseconds) answers until it is ready.
        # None: not started; False: warming up (or failed); True: ready.
        self._jedi = None

    def _warm_jedi(self):
        try:
            import jedi

            jedi.Interpreter("import os\nos.pa", [{}]).complete()
            self._jedi = True
        except Exception as error:  # noqa: BLE001 - IPython's completer stays in charge
            print(f"tandem kernel: jedi unavailable: {error!r}", file=sys.__stderr__)

    @property
    def execution_count(self):
        """The count of the cell that ran last."""
        return self.shell.execution_count - 1

    def execute(self, code):
        """Runs a cell; returns (succeeded, execution_count, exit_requested)."""
        result = self.shell.run_cell(code, store_history=True)
        return result.success, result.execution_count, bool(self.shell.exit_now)

    def complete(self, request_id, code, cursor):
        """Sends a `complete_reply`: IPython's completions (jedi's when it has them) at
        `cursor`, as ipykernel's `complete_request` answers them."""
        from IPython.core.completer import provisionalcompleter, rectify_completions

        position = _utf16_to_index(code, cursor)
        matches, start, end = [], position, position
        if self._jedi is None:
            self._jedi = False
            # Started from the worker's helper thread, it inherits its blocked SIGINT, so
            # interrupts still reach the running cell's main thread.
            threading.Thread(target=self._warm_jedi, name="tandem-jedi", daemon=True).start()
        completer = self.shell.Completer
        completer.use_jedi = self._jedi is True
        try:
            with provisionalcompleter():
                found = completer.completions(code, position)
                completions = list(rectify_completions(code, found))
                if not completer.use_jedi:
                    # IPython's own completer lists attributes as `.name` from the dot, in
                    # no particular order: the editor wants `name` after the dot, sorted.
                    completions = [_after_dot(code, c) for c in completions]
                    completions.sort(key=lambda c: (c.text.startswith("_"), c.text.lower()))
        except Exception as error:  # noqa: BLE001 - a completer bug must not end the kernel
            print(f"tandem kernel: completion failed: {error!r}", file=sys.__stderr__)
            completions = []
        if completions:
            start, end = completions[0].start, completions[0].end
            seen = set()
            for completion in completions:
                if completion.text in seen:
                    continue
                seen.add(completion.text)
                matches.append(
                    {
                        "text": completion.text,
                        "type": completion.type or "",
                        "signature": completion.signature or "",
                    }
                )
                if len(matches) >= MAX_COMPLETIONS:
                    break
        _emit(
            {
                "type": "complete_reply",
                "id": request_id,
                "matches": matches,
                "cursor_start": _index_to_utf16(code, start),
                "cursor_end": _index_to_utf16(code, end),
            }
        )

    def inspect(self, request_id, code, cursor, detail_level):
        """Sends an `inspect_reply`: the signature and docstring of the name at `cursor`
        (the called function, inside a call's parentheses), as ipykernel's
        `inspect_request` answers it, in plain text."""
        from IPython.utils.tokenutil import token_at_cursor

        found, text = False, ""
        try:
            name = token_at_cursor(code, _utf16_to_index(code, cursor))
            if name:
                bundle = self.shell.object_inspect_mime(name, detail_level=detail_level)
                text = _ANSI.sub("", bundle.get("text/plain", ""))
                found = bool(text)
        except KeyError:
            pass
        except Exception as error:  # noqa: BLE001 - as in complete
            print(f"tandem kernel: inspection failed: {error!r}", file=sys.__stderr__)
        _emit({"type": "inspect_reply", "id": request_id, "found": found, "text": text})

    def shutdown(self):
        """Runs the exit hooks (the shell registers its own among them)."""
        # Nobody reads the notebook's streams any more: what exit hooks print goes to the log.
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        atexit._run_exitfuncs()


def _make_shell():
    """The IPython shell, with every output pointed at the protocol.

    Defined after IPython is known to import, so that a broken venv gives the message above
    rather than an ImportError from this module.
    """
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        """`display()`, `update_display()`, `clear_output()` → events."""

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs):
            self._validate_data(data, metadata)
            event = {
                "type": "update_display_data" if update else "display_data",
                "data": data,
                "metadata": metadata or {},
            }
            if transient:
                event["transient"] = transient
            _emit(event)

        def clear_output(self, wait=False):
            _emit({"type": "clear_output", "wait": bool(wait)})

    class ResultHook(DisplayHook):
        """The value of a cell's last expression → an `execute_result` event."""

        def start_displayhook(self):
            self._is_active = True
            self._result = {
                "type": "execute_result",
                "execution_count": self.prompt_count,
                "data": {},
                "metadata": {},
            }

        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            self._result["data"] = format_dict
            self._result["metadata"] = md_dict or {}

        def finish_displayhook(self):
            result, self._result = self._result, None
            self._is_active = False
            if result and result["data"]:
                _emit(result)

    class TandemShell(InteractiveShell):
        """IPython's shell with tracebacks sent as `error` events, as ipykernel does."""

        def _showtraceback(self, etype, evalue, stb):
            _emit(
                {
                    "type": "error",
                    "ename": getattr(etype, "__name__", str(etype)),
                    "evalue": str(evalue),
                    "traceback": stb,
                }
            )

        def ask_exit(self):
            # `exit()` / `quit()`: the worker ends the process once this cell is done,
            # as ipykernel does; the runtime then reports the kernel as exited.
            self.exit_now = True

        def enable_gui(self, gui=None):
            if gui:
                raise RuntimeError(
                    f"GUI event loops ({gui}) cannot run in a Tandem kernel: "
                    "use %matplotlib inline"
                )

    config = Config()
    # No history database: it would be a SQLite file in the kernel's home, and a session's
    # history lives in the notebook anyway.
    config.HistoryManager.enabled = False
    config.HistoryManager.hist_file = ":memory:"
    # Jupyter's colors: ANSI escapes in tracebacks, readable on light and dark themes.
    config.InteractiveShell.colors = "neutral"
    return TandemShell.instance(
        config=config,
        display_pub_class=Publisher,
        displayhook_class=ResultHook,
    )
