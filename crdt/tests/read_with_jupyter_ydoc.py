"""Interop with jupyter_ydoc (pycrdt), the library Jupyter Server uses for notebooks.

    read UPDATE...        apply each v1 update to a fresh pycrdt Doc and print a JSON list of
                          YNotebook(doc).get() results
    write OUT_DIR IPYNB...
                          for each notebook, read it the way Jupyter Server does
                          (nbformat.read(path, as_version=4)), build a document with
                          YNotebook.set(), and write OUT_DIR/<name>.update (the v1 update) and
                          OUT_DIR/<name>.json: {"set": the notebook given to set(),
                          "get": YNotebook.get() of the built document}
"""

import json
import os
import sys

import nbformat
from jupyter_ydoc import YNotebook
from pycrdt import Doc


def read(paths):
    results = []
    for path in paths:
        with open(path, "rb") as f:
            update = f.read()
        doc = Doc()
        doc.apply_update(update)
        results.append(YNotebook(doc).get())
    json.dump(results, sys.stdout)


def write(out_dir, paths):
    for path in paths:
        nb = json.loads(json.dumps(nbformat.read(path, as_version=4)))
        ynb = YNotebook()
        ynb.set(nb)
        name = os.path.basename(path)
        with open(os.path.join(out_dir, name + ".update"), "wb") as f:
            f.write(ynb.ydoc.get_update())
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump({"set": nb, "get": ynb.get()}, f)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "read":
        read(args)
    elif mode == "write":
        write(args[0], args[1:])
    else:
        sys.exit(f"unknown mode {mode!r}")
