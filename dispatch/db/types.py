"""The connection type every store function takes."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# asyncpg-stubs types what ``pool.acquire()`` yields as ``PoolConnectionProxy``, which there
# is not a ``Connection`` (at run time it passes ``isinstance`` through a metaclass). Store
# functions run on either, so they take this union rather than ``Any``.
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy
