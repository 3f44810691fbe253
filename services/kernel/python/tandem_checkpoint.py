"""`tandem.checkpoint` and `tandem.restore`: save objects to the user's drive, which outlives
the kernel, and load them in a later one.

Compiled into the kernel binary and loaded when the `tandem` module is built (see
`services/kernel/src/tensor/checkpoint.rs`). Checkpoints are pickles in
`drive/.checkpoints/<name>.pkl`, written to a temporary file and renamed into place, so a
kernel that dies mid-save leaves the previous checkpoint whole. `tandem.Tensor`s anywhere in
the object (a dict of weights, a list, an attribute) are saved through numpy and come back
as tensors with their dtype, on their device when this kernel has it and on the default
device otherwise.

    import tandem
    tandem.checkpoint({"step": 100, "w": w}, "run1")
    state = tandem.restore("run1")       # in any later kernel of the same user
"""

import io
import os
import pickle
import tempfile

# The kernel starts in its working directory, where the runtime links the drive as `drive/`;
# notebook code may `chdir` away later, so the place is fixed now.
_DRIVE = os.path.join(os.getcwd(), "drive")
_FOLDER = ".checkpoints"
_SUFFIX = ".pkl"


class CheckpointNotFound(KeyError):
    """`tandem.restore` of a name that was never saved (a `KeyError`, so `except KeyError`
    catches it)."""

    def __str__(self):
        # KeyError would show the message quoted, as if it were the missing key.
        return str(self.args[0]) if self.args else "no such checkpoint"


def _folder():
    if not os.path.isdir(_DRIVE):
        raise RuntimeError(
            "this kernel has no drive/ folder: checkpoints are saved to the drive of the "
            "person who started the kernel, and this one was started without one"
        )
    return os.path.join(_DRIVE, _FOLDER)


def _path(name):
    if not isinstance(name, str):
        raise TypeError(f"a checkpoint name is a str, not {type(name).__name__}")
    if (
        not name
        or len(name) > 200
        or "/" in name
        or "\0" in name
        or name.startswith(".")
    ):
        raise ValueError(
            f"bad checkpoint name {name!r}: use a plain file name (no '/', not starting with '.')"
        )
    return os.path.join(_folder(), name + _SUFFIX)


def _rebuild_tensor(array, dtype, device):
    import tandem

    try:
        tensor = tandem.from_numpy(array, device=device)
    except Exception:  # the device this was saved from is not here (a GPU checkpoint on CPU)
        tensor = tandem.from_numpy(array)
    if str(tensor.dtype) != dtype:
        tensor = tensor.to(dtype)
    return tensor


def _rebuild_dtype(name):
    import tandem

    return getattr(tandem, name)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        import tandem

        if isinstance(obj, tandem.Tensor):
            return _rebuild_tensor, (obj.numpy(), str(obj.dtype), obj.device)
        if isinstance(obj, tandem.dtype):
            return _rebuild_dtype, (str(obj),)
        return NotImplemented


def checkpoint(obj, name):
    """Saves `obj` to `drive/.checkpoints/<name>.pkl`, replacing an earlier checkpoint of
    that name only once the new one is complete. Returns the file's path."""
    path = _path(name)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return path


def restore(name):
    """The object last saved with `checkpoint(obj, name)`; `CheckpointNotFound` (a
    `KeyError`) when there is none."""
    path = _path(name)
    try:
        with open(path, "rb") as source:
            data = source.read()
    except FileNotFoundError:
        saved = checkpoints()
        listed = ", ".join(repr(n) for n in saved) if saved else "none yet"
        raise CheckpointNotFound(
            f"no checkpoint {name!r} in drive/{_FOLDER}/ (saved checkpoints: {listed})"
        ) from None
    return pickle.load(io.BytesIO(data))


def checkpoints():
    """The names of the saved checkpoints, sorted."""
    try:
        entries = os.listdir(_folder())
    except FileNotFoundError:
        return []
    return sorted(
        entry[: -len(_SUFFIX)]
        for entry in entries
        if entry.endswith(_SUFFIX) and not entry.startswith(".")
    )


# Pickles name these as `tandem._rebuild_*`, which `restore` finds in the `tandem` module.
_rebuild_tensor.__module__ = "tandem"
_rebuild_dtype.__module__ = "tandem"
