"""Rows as the column arrays an ``INSERT … SELECT … FROM unnest($1::t[], …)`` takes."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any


def columns(rows: Sequence[object], *names: str) -> list[list[Any]]:
    """One list per attribute of ``names``, each in row order: a batch in one round trip."""
    return [list(map(attrgetter(name), rows)) for name in names]
