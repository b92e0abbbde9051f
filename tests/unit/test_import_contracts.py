"""The layer contracts (pyproject.toml [tool.importlinter], docs/architecture.md) hold for the code, and each
one fails on a wrong import: the checker runs on a copy of the packages with one bad import added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = {
    "podium": ROOT / "operator" / "podium",
    "podium_localcluster": ROOT / "localcluster" / "podium_localcluster",
}


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts over the packages found first on ``tree``'s paths."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(tree / name) for name in PACKAGES))
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for name, source in PACKAGES.items():
        shutil.copytree(source, root / name / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture
def inject(tree: Path) -> Iterator[tuple[Path, list[tuple[Path, str]]]]:
    """Files edited by a test are restored after it."""
    edited: list[tuple[Path, str]] = []
    yield tree, edited
    for path, text in edited:
        path.write_text(text)


def test_the_code_keeps_every_contract(tree: Path) -> None:
    out = lint_imports(tree)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("podium/podium/dataplane/keys.py", "import podium.engine.runner", "cli > operator > engine > dataplane > api"),
        ("podium/podium/api/common.py", "import podium.dataplane.keys", "cli > operator > engine > dataplane > api"),
        ("podium/podium/agent/config.py", "import podium.operator.kube", "the agent runtime needs only the data plane"),
        ("podium/podium/engine/graph.py", "import podium.agent.config", "no layer imports the agent runtime"),
        ("podium/podium/operator/kube.py", "import podium_localcluster.launcher", "the product and the local cluster"),
        ("podium/podium/telemetry/config.py", "import podium.dataplane.messages", "telemetry imports no other Podium"),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    inject: tuple[Path, list[tuple[Path, str]]], module: str, bad_import: str, contract: str
) -> None:
    tree, edited = inject
    path = tree / module
    text = path.read_text()
    edited.append((path, text))
    path.write_text(text + f"\n{bad_import}  # the wrong import under test\n")
    out = lint_imports(tree)
    assert out.returncode != 0
    broken = [line for line in out.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), out.stdout
