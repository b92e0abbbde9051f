"""`podium ui` refuses what it cannot serve, saying why, before it listens anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.viewer.cli import main


def test_bad_flags_are_refused_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--namespace", "Team_A"]) == 2
    assert "not a namespace name" in capsys.readouterr().err
    assert main(["--port", "70000"]) == 2
    assert "--port must be 1-65535" in capsys.readouterr().err


def test_without_kubernetes_configuration_it_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["-n", "team-a", "--port", "18089"]) == 2
    err = capsys.readouterr().err
    assert "no Kubernetes configuration" in err and "KUBECONFIG" in err
