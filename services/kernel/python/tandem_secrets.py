"""Secrets in the kernel: `tandem.secrets.get("NAME")` and Colab's `google.colab.userdata`.

A lookup goes to the runtime, which asks the collab service for the secret of whoever ran
the current cell, granted to this notebook. The kernel holds no credential of its own; it
gets one value per lookup and keeps none.

    import tandem
    token = tandem.secrets.get("HF_TOKEN")

    from google.colab import userdata      # Colab notebooks run unchanged
    token = userdata.get("HF_TOKEN")
"""

import importlib
import importlib.util
import os
import sys
import types

import _tandem_kernel as _native


class SecretError(Exception):
    """A secret could not be read."""


class SecretNotFoundError(SecretError):
    """You have no secret of that name (add it in the notebook's Secrets panel)."""


class NotebookAccessError(SecretError):
    """The secret exists but is not granted to this notebook (turn on its notebook access)."""


class TimeoutException(SecretError):
    """The runtime did not answer in time."""


_ERRORS = {
    "secret_not_found": SecretNotFoundError,
    "notebook_access": NotebookAccessError,
    "timeout": TimeoutException,
}


def get(name):
    """The value of your secret `name`, if you granted it to this notebook.

    Raises SecretNotFoundError when you have no such secret, NotebookAccessError when it is
    not granted to this notebook, TimeoutException when the runtime does not answer.
    """
    if not isinstance(name, str):
        raise TypeError(f"a secret's name is a str, not {type(name).__name__}")
    ok, value, message = _native.secret(name)
    if ok:
        return value
    raise _ERRORS.get(value, SecretError)(message)


def _module(name, doc, **attributes):
    module = types.ModuleType(name, doc)
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


_API = dict(
    get=get,
    SecretError=SecretError,
    SecretNotFoundError=SecretNotFoundError,
    NotebookAccessError=NotebookAccessError,
    TimeoutException=TimeoutException,
)


def _colab_importable():
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


def install():
    """Registers `tandem.secrets` and, unless a real `google.colab` is importable, the
    `google`, `google.colab` and `google.colab.userdata` shims."""
    secrets = _module("tandem.secrets", __doc__, **_API)
    tandem = sys.modules.get("tandem")
    if tandem is not None:
        tandem.secrets = secrets
    sys.modules["tandem.secrets"] = secrets

    if _colab_importable():
        return
    try:
        google = importlib.import_module("google")
    except ImportError:
        # A namespace-like package over every `google/` folder on sys.path, so a later
        # `pip install protobuf` still imports as `google.protobuf`.
        google = _module("google", "Namespace package (Tandem's Colab shim).")
        google.__path__ = [os.path.join(p or os.getcwd(), "google") for p in sys.path]
        sys.modules["google"] = google
    userdata = _module("google.colab.userdata", "Colab's user secrets, from Tandem.", **_API)
    colab = _module("google.colab", "Tandem's stand-in for Colab's module.", userdata=userdata)
    colab.__path__ = []
    sys.modules["google.colab"] = colab
    sys.modules["google.colab.userdata"] = userdata
    google.colab = colab
