"""Helpers shared by tests that need more than an in-process app (no pytest fixtures here)."""
