"""Test support that several tiers share: real servers the tests start (the model server) and fault injectors."""
