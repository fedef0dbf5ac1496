"""The package's imports run one way: no cycle, not even through an import inside a function, and
no stage of the analysis reaches up into what drives it (the pipeline, live, the CLI, the server)."""

from __future__ import annotations

import ast
from pathlib import Path

import moodlens

PACKAGE = Path(moodlens.__file__).resolve().parent
# the stages, media -> utterances -> speakers and turns -> experts -> fusion -> report, and the models they run
STAGES = ("media", "asr", "transcripts", "utterances", "vad", "language", "turns", "speakers", "tracks", "faces",
          "experts", "models", "fusion", "summary", "analysis", "writers", "labels", "errors", "options", "runtime")
DRIVERS = ("pipeline", "live", "analyzer", "inputs", "batch", "cli", "server", "evaluation", "training")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("moodlens", *path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every moodlens module that `path` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    # the root package's __init__ runs before any submodule anyway, and re-exports the API lazily
    return {n for n in names if n in modules and n != "moodlens"}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items() if name != "moodlens"}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_no_module_imports_itself_round_a_cycle() -> None:
    graph = _graph()
    assert len(graph) > 60 and sum(map(len, graph.values())) > 200  # the walk really found the imports
    assert _cycles(graph) == []


def test_a_cycle_would_be_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_stage_imports_what_drives_it() -> None:
    graph = _graph()
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() if _room(m) in STAGES
                    for t in targets if _room(t) in DRIVERS)
    assert upward == []
