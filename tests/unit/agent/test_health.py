from __future__ import annotations

from podium.agent.health import Health
from podium.agent.runtime import backend_problem


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


def test_a_backend_is_down_after_two_failed_probes_in_a_row_and_up_after_one_answer() -> None:
    down = "its model server: cannot reach http://llm/v1: timeout"
    assert backend_problem(None, down, failed=1) is None  # one slow answer on a busy machine
    assert backend_problem(None, down, failed=2) == down
    assert backend_problem(down, "its model server: answers 503", failed=1) == down  # a new outage is not news yet
    assert backend_problem(down, None, failed=0) is None
    assert backend_problem(None, down, failed=1, first=True) == down  # never seen up: down at once
    assert backend_problem(None, None, failed=0, first=True) is None
    h = Health(stall_seconds=1.0, backend_ready=True, redis_ok=True, backend_problem=down)
    assert h.ready() == (False, f"backend unavailable: {down}")


def test_a_probed_backend_is_not_ready_before_its_first_probe_is_back() -> None:
    h = Health(stall_seconds=1.0, backend_ready=True, redis_ok=True, backend_checked=False)
    assert h.ready() == (False, "backend not checked yet: its first probe has not answered")
    h.backend_checked = True
    assert h.ready() == (True, "ok")
