"""Deterministic demo agents: the examples and the strategy tests run without a hosted model."""
