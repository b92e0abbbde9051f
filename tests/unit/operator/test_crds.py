"""Telling installed CRDs older than the operator: the decision (the API side is tests/cluster/test_crd_version.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from podium.api.crd import SCHEMA_ANNOTATION
from podium.operator.crds import expected, outdated

ROOT = Path(__file__).resolve().parents[3]


def test_the_chart_ships_the_crds_this_operator_expects() -> None:
    for name, stamp in expected().items():
        shipped = yaml.safe_load((ROOT / "charts" / "podium" / "crds" / f"{name.split('.')[0]}.yaml").read_text())
        assert shipped["metadata"]["annotations"][SCHEMA_ANNOTATION] == stamp


def test_a_crd_with_another_stamp_or_none_is_outdated_and_one_not_read_is_not_judged() -> None:
    now = expected()
    assert outdated(now) == []
    older = {**now, "teams.podium.dev": "an-earlier-one", "agents.podium.dev": None}
    assert outdated(older) == ["agents.podium.dev", "teams.podium.dev"]
    unreadable = {k: v for k, v in now.items() if k != "orchestrations.podium.dev"}
    assert outdated(unreadable) == []
