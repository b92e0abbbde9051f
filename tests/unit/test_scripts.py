"""The shell scripts pass shellcheck: scripts/kind.sh above all, which machines without Docker (Podium's own) never
run, so the linter is the only check it gets here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*(ROOT / "scripts").glob("*.sh"), *(ROOT / "localcluster").glob("*.sh")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck_finds_nothing(script: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: make setup installs it (Debian package shellcheck)")
    out = subprocess.run(["shellcheck", "--severity=info", str(script)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_kind_script_is_linted_and_says_what_it_needs_without_docker(tmp_path: Path) -> None:
    assert ROOT / "scripts" / "kind.sh" in SCRIPTS
    # A PATH with no docker on it (whatever this machine has), so nothing is ever created here.
    for tool in ("sed", "dirname", "grep"):
        found = shutil.which(tool)
        assert found is not None, tool
        (tmp_path / tool).symlink_to(found)
    out = subprocess.run(
        [shutil.which("bash") or "bash", str(ROOT / "scripts" / "kind.sh"), "up"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "kind.sh: Docker is not installed: PODIUM_CLUSTER=kind needs it (or use PODIUM_CLUSTER=local)"
    )
