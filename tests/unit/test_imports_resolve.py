"""Every project import resolves, including the lazy ones inside functions.

A module move leaves function-level imports pointing at the old path; nothing
notices until that code path runs on a clinic device (or in a bench nobody ran).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util

from tests.paths import REPO_ROOT as ROOT

PROJECT_PACKAGES = ("edge_agent", "tools", "tests")


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


def test_every_project_import_names_something_that_exists():
    broken = []
    for path, line, module, names in _project_imports():
        where = f"{path.relative_to(ROOT)}:{line}"
        if importlib.util.find_spec(module) is None:
            broken.append(f"{where} no module {module}")
            continue
        loaded = importlib.import_module(module)
        for name in names:
            if name != "*" and not hasattr(loaded, name) and importlib.util.find_spec(f"{module}.{name}") is None:
                broken.append(f"{where} {module} has no {name}")
    assert not broken, "\n".join(broken)
