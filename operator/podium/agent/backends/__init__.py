"""Backends: how an agent turns a task into a result (command, python, llm, http, a2a)."""

from podium.agent.backends.base import Backend, BackendError, BackendOutput, TaskLike, build_backend

__all__ = ["Backend", "BackendError", "BackendOutput", "TaskLike", "build_backend"]
