"""Validate notebooks the way Jupyter does: nbformat.validate(nbformat.read(path, NO_CONVERT)).

Usage: python validate_nbformat.py PATH...
Exits non-zero, naming the file and the schema error, when any file is invalid.
"""

import sys

import nbformat


def main(paths):
    failures = []
    for path in paths:
        try:
            nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
            nbformat.validate(nb)
            if nb.nbformat != 4 or nb.nbformat_minor != 5:
                raise ValueError(f"expected nbformat 4.5, got {nb.nbformat}.{nb.nbformat_minor}")
        except Exception as e:  # noqa: BLE001 - report every kind of failure per file
            failures.append(f"{path}: {type(e).__name__}: {e}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"{len(paths)} notebooks valid")


if __name__ == "__main__":
    main(sys.argv[1:])
