from __future__ import annotations

from podium.agent.defaults import RecentDurations, bid, required_capabilities
from podium.api.agent import AgentSpec

SPEC = AgentSpec.model_validate(
    {
        "role": "reviewer",
        "capabilities": [{"name": "python", "level": 0.9}, {"name": "review", "level": 0.5}],
        "backend": {"command": {"args": ["true"]}},
        "pricing": {"perTask": 0.01},
    }
)


def test_required_capabilities_forms() -> None:
    assert required_capabilities({"capability": "python"}) == ["python"]
    assert required_capabilities({"task": {"capabilities": ["a", "b"]}, "requires": ["a"]}) == ["a", "b"]
    assert required_capabilities("text") == []


def test_bid_prices_from_pricing_and_eta_from_history() -> None:
    durations = RecentDurations()
    for s in (1.0, 3.0):
        durations.add(s)
    b = bid(SPEC, {"capability": "python"}, load=0.0, eta_seconds=durations.average())
    assert b == {"price": 0.01, "estimatedSeconds": 2.0, "confidence": 0.9}


def test_confidence_falls_with_load_and_missing_skills() -> None:
    idle = bid(SPEC, {"capabilities": ["python", "review"]}, load=0.0, eta_seconds=None)["confidence"]
    busy = bid(SPEC, {"capabilities": ["python", "review"]}, load=1.0, eta_seconds=None)["confidence"]
    unskilled = bid(SPEC, {"capability": "rust"}, load=0.0, eta_seconds=None)["confidence"]
    assert idle == 0.7 and busy == 0.35 and unskilled == 0.0
