"""The test suite's own rules: test modules share helpers through tests/support or a tier's *_support/helpers
modules, never by importing each other (a test module imported elsewhere runs its tests twice)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path, source: str | None = None) -> list[str]:
    """Every module ``path`` imports, relative imports resolved (``source`` stands in for the file's text)."""
    package = ".".join(path.relative_to(TESTS.parent).parent.parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            out += [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def test_no_test_module_imports_another() -> None:
    offenders = {
        str(path.relative_to(TESTS)): found
        for path in sorted(TESTS.rglob("*.py"))
        if (found := [m for m in imported_modules(path) if m.rsplit(".", 1)[-1].startswith("test_")])
    }
    assert offenders == {}


def test_the_rule_sees_relative_and_absolute_imports() -> None:
    source = "from .test_node import apply\nfrom tests.unit import test_chart\nimport tests.unit.test_chart\n"
    modules = imported_modules(TESTS / "cluster" / "test_example.py", source)
    found = [m for m in modules if m.rsplit(".", 1)[-1].startswith("test_")]
    assert found == ["tests.cluster.test_node", "tests.unit.test_chart", "tests.unit.test_chart"]
