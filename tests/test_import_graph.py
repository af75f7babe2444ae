"""Import structure: the expert_eval and training modules each form a DAG (function-level imports
included), and the packages depend one way: stm_zoo <- training <- evaluation, stm_zoo <-
expert_eval, and all of them <- webapp / app."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stm_zoo", "training", "evaluation", "expert_eval", "webapp", "app")


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module named by an import anywhere in the file (functions included)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            yield node.module
            # `from expert_eval import store` imports the module expert_eval.store
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def module_graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports (the package's __init__ left out; a
    subpackage is one node, with the imports of all its files)."""
    root = REPO_ROOT / package
    modules = {p.stem: [p] for p in root.glob("*.py") if p.stem != "__init__"}
    for init in root.glob("*/__init__.py"):
        modules[init.parent.name] = sorted(init.parent.rglob("*.py"))
    return {
        name: {
            m.split(".")[1]
            for path in paths
            for m in imported_modules(path)
            if m.startswith(f"{package}.") and m.split(".")[1] in modules
        }
        - {name}
        for name, paths in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `graph` as a path that ends where it starts, else None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            return cycle
    return None


def package_imports(package: str) -> set[str]:
    """The other top-level packages (and app.py) that any module of `package` imports."""
    files = [REPO_ROOT / "app.py"] if package == "app" else (REPO_ROOT / package).rglob("*.py")
    tops = {m.split(".")[0] for f in files for m in imported_modules(f)}
    return tops & set(PACKAGES) - {package}


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_expert_eval_modules_import_each_other_without_a_cycle():
    graph = module_graph("expert_eval")
    assert {"store", "records", "export", "sync", "cli", "analysis", "raters"} <= set(graph)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"
    # The loops this layout removed stay removed.
    assert "analysis" not in graph["store"] and "store" not in graph["raters"]


def test_packages_depend_one_way():
    assert package_imports("stm_zoo") == set()
    assert not package_imports("expert_eval") & {"training", "evaluation", "app"}
    assert all("app" not in package_imports(p) for p in PACKAGES)


def test_training_modules_import_each_other_without_a_cycle():
    graph = module_graph("training")
    expected = {"train", "checkpoint", "distributed", "validation", "entry", "cli_train"}
    assert expected | {"sources", "shards", "datasets", "cli_data", "degradations"} <= set(graph)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"
    # The loop imports its pieces; no piece imports the loop but its CLI.
    assert {m for m, deps in graph.items() if "train" in deps} == {"cli_train"}


def test_training_imports_only_the_library():
    # Evaluation reads the training shards (evaluation -> training); the reverse would be a cycle.
    assert package_imports("training") <= {"stm_zoo"}
    # ... also at run time, through whatever stm_zoo imports.
    code = (
        "import sys, training.train, training.cli_train, training.datasets\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'evaluation', 'expert_eval', 'webapp', 'app', 'gradio'})\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
