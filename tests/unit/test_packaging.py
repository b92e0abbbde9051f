"""What `pip install podium` brings: the product only. The local cluster is a distribution of its own
(localcluster/pyproject.toml) for tests and the demo, so neither its code nor its `cryptography` ships."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: an in-tree build would leave build/ and egg-info behind in the checkout.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "operator" / "podium", src / "operator" / "podium", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("podium-*.whl")
    return path


def test_the_wheel_holds_the_product_and_no_local_cluster(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("api", "dataplane", "engine", "agent", "operator", "cli"):
        assert any(n.startswith(f"podium/{package}/") for n in names), package
    assert [n for n in names if "localcluster" in n] == []


def test_the_wheel_requires_no_cryptography(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line for line in z.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert any("kopf" in r for r in requires), requires
    assert [r for r in requires if "cryptography" in r.lower()] == []


def test_podium_help_lists_no_local_cluster_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "podium", "--help"], capture_output=True, text=True, check=True).stdout
    commands = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert commands == {"operator", "agent", "run", "ui", "selftest"}


def test_a2a_is_an_extra_the_agent_image_installs(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line for line in z.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")]
    sdk = [r for r in requires if "a2a-sdk" in r]
    assert sdk and all('extra == "a2a"' in r for r in sdk), requires
    assert '".[a2a,tracing]"' in (ROOT / "agent-images" / "Dockerfile.agent").read_text()


def test_tracing_is_an_extra_both_images_install(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line for line in z.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")]
    sdk = [r for r in requires if "opentelemetry" in r]
    assert sdk and all('extra == "tracing"' in r for r in sdk), requires
    assert '".[a2a,tracing]"' in (ROOT / "agent-images" / "Dockerfile.agent").read_text()
    assert '".[tracing]"' in (ROOT / "agent-images" / "Dockerfile.operator").read_text()
