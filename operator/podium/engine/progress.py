"""What the operator shows while a run goes: per-task records and done/total counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podium.api.orchestration import TaskState

FINISHED: tuple[TaskState, ...] = ("Succeeded", "Failed", "Skipped", "Cancelled")


@dataclass
class TaskRecord:
    step: str
    kind: str
    agent: str | None = None
    state: TaskState = "Pending"
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    cost: float = 0.0
    tokens: int = 0
    task_id: str | None = None


@dataclass
class Progress:
    total: int
    done: int
    tasks: list[TaskRecord] = field(default_factory=list)
    cost: float = 0.0
    tokens: int = 0
    # Approvals asked for (podium.dataplane.approvals.ApprovalRecord): one Waiting makes the run AwaitingApproval.
    approvals: list[Any] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # agents the run waits for to come up, each with why

    @property
    def text(self) -> str:
        return f"{self.done}/{self.total}"
