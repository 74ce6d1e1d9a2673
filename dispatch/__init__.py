"""Dispatch core: intake, matching, alert state, workers, HTTP API and CLI."""
