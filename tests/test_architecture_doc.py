"""The README's architecture section matches the code.

Three checks keep the data-flow pictures (the ```mermaid blocks of the section) and the package
table honest:

1. Every module path the section names (`stm_zoo/pipeline.py`, `training/simulate/`,
   `stm_zoo.io.load_scan`) exists; a dotted name's last part is defined in its module.
2. Every arrow between two module nodes is in the code. A dotted arrow `a -.-> b` ("a uses b")
   needs a to import b; a solid arrow `a --> b` (data flow) needs one of the two to import the
   other, or one module to import both (the orchestrator that hands the data on). A node's
   modules are the paths on the first line of its label (`app.py + webapp/`); a folder stands
   for every module in it. Importing a package counts as importing what its `__init__.py`
   imports or names.
3. Every top-level module and sub-package of the packages is mentioned in the section: as a path
   or a dotted name anywhere, or as `name.py` / `name/` in the package's table row.

The mermaid is kept in a plain form so that it can be checked: one node or one edge per line,
labels in double quotes, edges `a --> b`, `a -.-> b`, optionally labelled `-->|"text"|`.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stm_zoo", "training", "evaluation", "expert_eval", "webapp")
PREFIX = "|".join(PACKAGES)
SLASH_PATH = re.compile(rf"(?<![\w/.])(?:(?:{PREFIX})(?:/\w+)*(?:\.py|/)|app\.py)")
DOTTED_NAME = re.compile(rf"(?<![\w/.])(?:{PREFIX})(?:\.\w+)+")
SUBGRAPH = re.compile(r'subgraph\s+(\w+)\s*\["(.*)"\]$')
NODE = re.compile(r'(\w+)\s*[\[\(\{]+"(.*)"[\]\)\}]+$')
EDGE = re.compile(r'(\w+)\s+(-->|-\.->)\s*(?:\|"[^"|]*"\|\s*)?(\w+)$')
KEYWORDS = re.compile(r"(flowchart|graph)\s+\w+$|direction\s+\w+$|end$|%%.*")


def architecture_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Architecture\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def mermaid_blocks() -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", architecture_section(), flags=re.DOTALL)


def module_name(path: Path) -> str:
    """stm_zoo/io/api.py -> "stm_zoo.io.api"; stm_zoo/io/__init__.py -> "stm_zoo.io"."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    files = [ROOT / "app.py", *(p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")))]
    return {module_name(p): p for p in files}


def known_module(name: str) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules():
            return ".".join(parts[:n])
    return None


@cache
def direct_imports(module: str) -> frozenset[str]:
    """Our modules that `module` imports anywhere in its file (top level or inside functions)."""
    path = modules()[module]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif path.name == "__init__.py" and isinstance(node, ast.Constant):
            names = [node.value] if isinstance(node.value, str) else []  # lazy-import tables
        found.update(m for m in map(known_module, names) if m is not None)
    found.discard(module)
    return frozenset(found)


@cache
def imports(module: str) -> frozenset[str]:
    """`direct_imports`, plus what each imported package's `__init__.py` imports (transitively)."""
    found = set(direct_imports(module))
    for name in direct_imports(module):
        if modules()[name].name == "__init__.py":
            found |= imports(name)
    return frozenset(found)


def path_module(path: str) -> str:
    return "app" if path == "app.py" else path.removesuffix(".py").strip("/").replace("/", ".")


def node_modules(label: str) -> frozenset[str]:
    """The modules of a node: those of the paths on its label's first line (a folder: all)."""
    named = [path_module(p) for p in SLASH_PATH.findall(label.split("<br/>")[0])]
    return frozenset(m for m in modules() for n in named if m == n or m.startswith(n + "."))


def parse(block: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """The labelled nodes (and subgraphs) of a mermaid block and its edges (a, arrow, b)."""
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in filter(None, (raw.strip() for raw in block.splitlines())):
        if match := EDGE.match(line):
            edges.append(match.groups())
        elif "-->" in line or "-.->" in line:
            pytest.fail(f'write one edge per line, `a --> b` or `a -.->|"label"| b`: {line}')
        elif match := SUBGRAPH.match(line) or NODE.match(line):
            nodes[match[1]] = match[2]
        elif not KEYWORDS.match(line):
            pytest.fail(f"cannot read this mermaid line (see this test's docstring): {line}")
    return nodes, edges


def test_the_section_has_the_data_flow_pictures() -> None:
    blocks = mermaid_blocks()
    assert blocks, "README's architecture section lost its ```mermaid data-flow picture"
    assert any("stm_zoo/pipeline.py" in block for block in blocks)


def test_every_named_module_exists() -> None:
    section = architecture_section()
    missing = [p for p in SLASH_PATH.findall(section) if not (ROOT / p).exists()]
    for name in DOTTED_NAME.findall(section):
        module = known_module(name)
        rest = name[len(module) + 1 :].split(".")[0] if module else ""
        source = modules()[module].read_text(encoding="utf-8") if module else ""
        if module is None or (rest and not re.search(rf"\b{rest}\b", source)):
            missing.append(name)
    assert not missing, f"README's architecture section names what does not exist: {missing}"


def related(a: frozenset[str], b: frozenset[str]) -> bool:
    """One imports the other, or one module imports both."""
    if a & b or any(imports(m) & b for m in a) or any(imports(m) & a for m in b):
        return True
    return any(imports(m) & a and imports(m) & b for m in modules())


@pytest.mark.parametrize("index", range(len(mermaid_blocks())))
def test_every_arrow_is_in_the_code(index: int) -> None:
    nodes, edges = parse(mermaid_blocks()[index])
    wrong = []
    for a, arrow, b in edges:
        assert a in nodes and b in nodes, f"define nodes {a!r} and {b!r} with a label first"
        source, target = node_modules(nodes[a]), node_modules(nodes[b])
        if not source or not target:
            continue  # a file, a folder of weights or the Hub: not code
        uses = any(imports(m) & target for m in source)
        if not (uses if arrow == "-.->" else related(source, target)):
            wrong.append(f"{a} {arrow} {b}")
    assert not wrong, f"arrows with no import behind them: {wrong}"


def package_row(section: str, package: str) -> str:
    rows = [line for line in section.splitlines() if line.startswith(f"| `{package}/`")]
    return rows[0] if rows else ""


def test_every_top_level_module_is_documented() -> None:
    section = architecture_section()
    mentioned = {path_module(p) for p in SLASH_PATH.findall(section)}
    mentioned |= {m for m in map(known_module, DOTTED_NAME.findall(section)) if m}
    undocumented = []
    for package in PACKAGES:
        row = package_row(section, package)
        for path in sorted((ROOT / package).iterdir()):
            if path.is_dir() and (path / "__init__.py").exists():
                module, short = module_name(path / "__init__.py"), f"{path.name}/"
            elif path.suffix == ".py" and path.name != "__init__.py":
                module, short = module_name(path), path.name
            else:
                continue
            if module not in mentioned and not re.search(rf"(?<![\w/.]){re.escape(short)}", row):
                undocumented.append(f"{package}/{short}")
    assert not undocumented, (
        "modules missing from README's architecture section (add a sentence each to their "
        f"package's row): {undocumented}"
    )
