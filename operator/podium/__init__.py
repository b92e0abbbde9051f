"""Podium: a Kubernetes operator that runs teams of AI agents."""

__version__ = "0.1.0"
