"""Orchestration: each use case runs its decisions (domain) against storage and ports."""
