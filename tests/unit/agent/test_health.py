from __future__ import annotations

from podium.agent.health import Health


def test_liveness_follows_the_tick() -> None:
    h = Health(stall_seconds=2.0)
    h.tick()
    assert h.live(now=h.last_tick + 1)[0]
    ok, why = h.live(now=h.last_tick + 3)
    assert not ok and "stalled" in why


def test_readiness_needs_everything() -> None:
    h = Health(stall_seconds=1.0)
    assert h.ready() == (False, "backend not ready")
    h.backend_ready = True
    assert h.ready() == (False, "redis unreachable")
    h.redis_ok = True
    assert h.ready() == (True, "ok")
    h.maintenance = True
    assert not h.ready()[0]
    h.maintenance, h.draining = False, True
    assert "draining" in h.ready()[1]
