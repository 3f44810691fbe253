#!/usr/bin/env python3
"""Packs the kernel's pure-Python dependencies small, for a machine that cannot pip install.

Run it with the Python the packages are for (requirement markers are evaluated for it):

    python3.12 pack_kernel_site.py --site VENV/lib/python3.12/site-packages \
        --root ipython --exclude numpy --out .gpu/kernel-site.zip

Takes `--root` and everything it requires (markers evaluated here, extras ignored), as
installed in `--site`, minus `--exclude`d distributions (what the target machine already has);
writes the files each distribution's RECORD lists (no `__pycache__`) into a deflate-9 zip, to be
unpacked into a venv's site-packages (`python3 -m zipfile -e`). Refuses a distribution with
version-specific compiled extensions unless --allow-binary (stable-ABI `.abi3.so` ones are fine):
the zip must run on any CPython of that version.
Prints one JSON line: the distributions, the bytes before and after.
"""

import argparse
import importlib.metadata as md
import json
import os
import re
import sys
import zipfile


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(dist):
    """Names of the distributions `dist` needs here (markers evaluated, extras skipped)."""
    names = []
    for req in dist.requires or []:
        spec, _, marker = req.partition(";")
        if marker.strip():
            env = {
                "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
                "python_full_version": sys.version.split()[0],
                "sys_platform": sys.platform,
                "platform_system": "Linux" if sys.platform == "linux" else sys.platform,
                "os_name": os.name,
                "implementation_name": sys.implementation.name,
                "platform_python_implementation": "CPython",
                "platform_machine": os.uname().machine,
                "extra": None,
            }
            if not evaluate(marker.strip(), env):
                continue
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        if name:
            names.append(canonical(name.group(1)))
    return names


def evaluate(marker, env):
    """A small PEP 508 marker evaluator: `and`/`or`, parentheses, comparisons of versions
    and strings. An `extra == ...` clause is false (extras are not packed)."""
    tokens = re.findall(r"\(|\)|and\b|or\b|not in\b|in\b|[<>=!~]=|[<>]|'[^']*'|\"[^\"]*\"|[\w.]+",
                        marker)
    pos = 0

    def value(tok):
        if tok[0] in "'\"":
            return tok[1:-1]
        return env.get(tok, tok)

    def version(v):
        return tuple(int(x) if x.isdigit() else 0 for x in re.findall(r"\d+|[a-z]+", str(v)))

    def compare(left, op, right):
        if left is None or right is None:
            return False
        if op in ("in", "not in"):
            return (left in right) == (op == "in")
        if re.fullmatch(r"[\d.]+", str(left)) and re.fullmatch(r"[\d.*]+", str(right)):
            left, right = version(left), version(str(right).replace(".*", ""))
            if op == "~=":
                return left >= right and left[: len(right) - 1] == right[:-1]
        return {"==": left == right, "!=": left != right, "<": left < right,
                "<=": left <= right, ">": left > right, ">=": left >= right,
                "~=": left >= right}[op]

    def atom():
        nonlocal pos
        if tokens[pos] == "(":
            pos += 1
            result = disjunction()
            pos += 1  # ")"
            return result
        left, op, right = tokens[pos], tokens[pos + 1], tokens[pos + 2]
        pos += 3
        return compare(value(left), op, value(right))

    def conjunction():
        nonlocal pos
        result = atom()
        while pos < len(tokens) and tokens[pos] == "and":
            pos += 1
            result = atom() and result
        return result

    def disjunction():
        nonlocal pos
        result = conjunction()
        while pos < len(tokens) and tokens[pos] == "or":
            pos += 1
            result = conjunction() or result
        return result

    return disjunction()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--site", required=True, help="the site-packages the packages are installed in")
    p.add_argument("--root", action="append", required=True, help="top-level distribution(s)")
    p.add_argument("--exclude", action="append", default=[], help="distributions to leave out")
    p.add_argument("--out", required=True)
    p.add_argument("--allow-binary", action="store_true")
    args = p.parse_args()

    installed = {canonical(d.metadata["Name"]): d for d in md.distributions(path=[args.site])}
    exclude = {canonical(n) for n in args.exclude}
    todo, packed = [canonical(r) for r in args.root], {}
    while todo:
        name = todo.pop()
        if name in packed or name in exclude:
            continue
        dist = installed.get(name)
        if dist is None:
            sys.exit(f"pack_kernel_site: {name} is required but not installed in {args.site}")
        packed[name] = dist
        todo.extend(requirement_names(dist))

    raw = 0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with zipfile.ZipFile(args.out + ".tmp", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, dist in sorted(packed.items()):
            for file in dist.files or []:
                rel = str(file)
                if "__pycache__" in rel or rel.endswith(".pyc") or rel.startswith(".."):
                    continue
                # abi3 extensions (psutil's, wcwidth's) load in any CPython 3 from their
                # minimum on; a cpython-3XX one only in that version.
                portable = rel.endswith(".abi3.so")
                if rel.endswith(".so") and not portable and not args.allow_binary:
                    sys.exit(f"pack_kernel_site: {name} has a compiled extension ({rel})")
                path = os.path.join(args.site, rel)
                if os.path.isfile(path):
                    raw += os.path.getsize(path)
                    z.write(path, rel)
    os.replace(args.out + ".tmp", args.out)
    print(json.dumps({
        "python": sys.version.split()[0],
        "distributions": sorted(f"{d.metadata['Name']}=={d.version}" for d in packed.values()),
        "excluded": sorted(exclude),
        "raw_bytes": raw,
        "zip_bytes": os.path.getsize(args.out),
    }))


if __name__ == "__main__":
    main()
