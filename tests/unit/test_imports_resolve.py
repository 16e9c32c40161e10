"""Every project import resolves, including the lazy ones inside functions.

A module move leaves function-level imports pointing at the old path; nothing
notices until that code path runs on a clinic device (or in a bench nobody ran).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

from tests.paths import REPO_ROOT as ROOT

PROJECT_PACKAGES = ("edge_agent", "tools", "tests")


def _test_module_names() -> set[str]:
    tests = ROOT / "tests"
    names = {p.stem for p in tests.rglob("*.py")} | {p.name for p in tests.rglob("*") if p.is_dir()}
    return names - set(PROJECT_PACKAGES)


def _bare_test_imports():
    """Imports of test helpers by bare name: they work only because pytest puts tests/ on the path,
    and load a second copy of the module (other classes, other state) beside ``tests.<name>``."""
    names = _test_module_names()
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for module in modules:
                if module.split(".")[0] in names:
                    yield f"{path.relative_to(ROOT)}:{node.lineno} imports {module}; write tests.<...>"


def _project_imports():
    for package in PROJECT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    if node.module.split(".")[0] in PROJECT_PACKAGES:
                        yield path, node.lineno, node.module, [a.name for a in node.names]
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] in PROJECT_PACKAGES:
                            yield path, node.lineno, alias.name, []


def _top_level_names(module: str) -> set[str]:
    """Names a module defines at top level, read from its source (for a build-time module whose third-party
    imports, e.g. scikit-learn, are not installed on a clean machine)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin
    names: set[str] = set()
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _names_of(module: str) -> set[str] | object:
    """The loaded module, or its top-level names when importing it needs a package that is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in PROJECT_PACKAGES:
            raise
        return _top_level_names(module)


def test_every_project_import_names_something_that_exists():
    broken = []
    for path, line, module, names in _project_imports():
        where = f"{path.relative_to(ROOT)}:{line}"
        if importlib.util.find_spec(module) is None:
            broken.append(f"{where} no module {module}")
            continue
        loaded = _names_of(module)
        for name in names:
            has = name in loaded if isinstance(loaded, set) else hasattr(loaded, name)
            if name != "*" and not has and importlib.util.find_spec(f"{module}.{name}") is None:
                broken.append(f"{where} {module} has no {name}")
    assert not broken, "\n".join(broken)


def test_a_build_time_module_is_checked_from_its_source():
    """tools.training.behaviour_heads imports scikit-learn (build venv only); its names are still checked."""
    names = _top_level_names("tools.training.behaviour_heads")
    assert {"sparse_matrix", "Spec", "choose_thresholds"} <= names
    assert "no_such_function" not in names


def test_test_helpers_are_imported_through_the_tests_package():
    bare = list(_bare_test_imports())
    assert not bare, "\n".join(bare)


def _package_imports() -> dict[str, set[str]]:
    """edge_agent's sub-packages (and top-level modules) -> the ones they import, lazy imports included."""
    graph: dict[str, set[str]] = {}
    for path, _line, module, _names in _project_imports():
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[0] != "edge_agent" or len(parts) < 2 or parts[1] == "proto":  # generated code
            continue
        src = parts[1]
        targets = graph.setdefault(src, set())
        bits = module.split(".")
        if bits[0] in ("tools", "tests"):
            targets.add(bits[0])
        elif bits[0] == "edge_agent" and len(bits) > 1 and bits[1] not in ("proto", src):
            targets.add(bits[1])
    return graph


def test_the_runtime_package_has_no_import_cycles_and_never_imports_tooling() -> None:
    from graphlib import CycleError, TopologicalSorter

    graph = _package_imports()
    assert len(graph) >= 10, sorted(graph)
    # only `edge-agent bench` reaches into tools/, behind a gate that says "run it in a clone" (cli/__init__.py)
    tooling = sorted(f"{src} -> {t}" for src, targets in graph.items() for t in targets & {"tools", "tests"} if (src, t) != ("cli", "tools"))
    assert not tooling, f"the installed package imports tools/ or tests/ (not installed): {tooling}"
    graph = {src: targets - {"tools", "tests"} for src, targets in graph.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle between edge_agent packages: {' -> '.join(exc.args[1])}") from None
