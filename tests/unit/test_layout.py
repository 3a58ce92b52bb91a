"""The house rules of the tree, read from the source: layers without cycles, and tests that stand alone."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "workers", "training", "schemas")
DOMAIN = "pipeline.domain"
IO_LIBRARIES = {
    "redis", "clickhouse_driver", "chdb", "kafka", "aiokafka", "faust", "fastapi", "starlette", "uvicorn", "httpx",
}  # fmt: skip


def module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(path: Path, module: str) -> Iterator[str]:
    """Every module a file imports, at any depth (lazy imports and TYPE_CHECKING ones included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (a name resolves to its longest known module)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(path, module):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def external_imports(module: str) -> set[str]:
    """The top-level names of everything a module imports, its own project's included."""
    path = module_files()[module]
    return {name.split(".")[0] for name in imported_names(path, module) if name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_worker_never_imports_training() -> None:
    offenders = {
        module: sorted(t for t in targets if t.split(".")[0] == "training")
        for module, targets in import_graph().items()
        if module.split(".")[0] == "workers"
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_domain_packages_do_no_io() -> None:
    graph = import_graph()
    for module in (m for m in graph if m == DOMAIN or m.startswith(DOMAIN + ".")):
        assert not external_imports(module) & IO_LIBRARIES, module
        # The domain stands on the project's errors and records, nothing built on top of it.
        ours = {t for t in graph[module] if not t.startswith(DOMAIN)}
        assert ours <= {"pipeline.errors", "schemas.records"}, (module, ours)


def test_stores_know_nothing_of_their_callers() -> None:
    callers = ("pipeline.api", "pipeline.cli", "pipeline.devkit", "pipeline.ingest", "pipeline.alerting", "workers")
    for module, targets in import_graph().items():
        if module.startswith("pipeline.stores"):
            assert not [t for t in targets if t.startswith(callers)], module


def test_no_test_module_imports_another() -> None:
    """What tests share lives in tests.support (helpers) and tests.plugins (fixtures, loaded by conftest)."""
    tests = REPO / "tests"
    for path in tests.rglob("*.py"):
        if not (path.name.startswith("test_") or path.name == "conftest.py"):
            continue
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for name in imported_names(path, module):
            last = name.split(".")[-1]
            assert not (name.startswith("tests.") and (last.startswith("test_") or last == "conftest")), (path, name)
            assert not name.startswith("tests.plugins"), (path, name)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_benchmark_figures_or_issue_numbers_in_comments(package: str) -> None:
    import io
    import re
    import tokenize

    figure = re.compile(
        r"\d[\d,.]*\s*(posts|texts|rows|seq|msg)/s|\bissues?\s*#?\d+|(?<![&\"\w])#\d{1,4}\b(?!;)|shared/facts",
        re.IGNORECASE,
    )
    for path in (REPO / package).rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                assert not figure.search(token.string), f"{path}:{token.start[0]}: {token.string}"
