"""Shared pieces of the task runtime (errors)."""
