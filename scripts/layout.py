"""Print the package tree with one sentence per module: the first sentence of its docstring.

    python scripts/layout.py [PACKAGE ...]    # default: app.py and every package

A module without a docstring is listed as such and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stm_zoo", "training", "evaluation", "expert_eval", "webapp")
MISSING = "(no docstring)"


def first_sentence(path: Path) -> str:
    """The first sentence of a module's docstring, on one line, or MISSING."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    if not docstring:
        return MISSING
    paragraph = " ".join(docstring.split("\n\n")[0].split())
    # A sentence ends at . ! or ? before a capital or a backtick, not inside "Fig. 1" or "e.g. x".
    return re.split(r"(?<=[.!?])\s+(?=[A-Z`])", paragraph)[0]


def children(package: Path) -> list[Path]:
    """The modules and sub-packages of a package, by name."""
    entries = [
        p
        for p in package.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").exists())
    ]
    return sorted(entries, key=lambda p: p.name)


def tree(package: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """(drawn name, file holding the docstring) for every module under a package."""
    rows = []
    entries = children(package)
    for i, path in enumerate(entries):
        last = i == len(entries) - 1
        branch, indent = ("└── ", "    ") if last else ("├── ", "│   ")
        if path.is_dir():
            rows.append((f"{prefix}{branch}{path.name}/", path / "__init__.py"))
            rows += tree(path, prefix + indent)
        else:
            rows.append((f"{prefix}{branch}{path.name}", path))
    return rows


def layout(names: list[str]) -> tuple[str, int]:
    """The printed layout and the number of modules without a docstring."""
    rows: list[tuple[str, Path]] = []
    for name in names:
        path = ROOT / name
        if path.is_dir():
            rows += [(f"{name}/", path / "__init__.py"), *tree(path)]
        else:
            rows.append((name, path))
    width = max(len(drawn) for drawn, _ in rows)
    sentences = [first_sentence(path) for _, path in rows]
    lines = [f"{drawn:<{width}}  {s}" for (drawn, _), s in zip(rows, sentences, strict=True)]
    return "\n".join(lines), sentences.count(MISSING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["app.py", *PACKAGES], metavar="PACKAGE")
    args = parser.parse_args(argv)
    text, missing = layout(args.names)
    print(text)
    if missing:
        print(f"{missing} module(s) without a docstring", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
