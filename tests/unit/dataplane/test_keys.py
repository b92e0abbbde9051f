"""Key formats read back by their owner (podium.dataplane.keys)."""

from __future__ import annotations

from podium.dataplane.keys import AgentKeys


def test_a_result_key_gives_back_its_agents_result_stream_and_the_task_id_whole() -> None:
    keys = AgentKeys("ns", "worker")
    for task_id in ("t1", "uid:step:2", "odd:result:id"):
        assert AgentKeys.parse_result(keys.result(task_id)) == (keys.results, task_id)
