"""A fake map tile server (``/{z}/{x}/{y}.png``): answers each tile with a small PNG and
records which tiles were asked for."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer

# A 1x1 grey PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mN8+/btfwAJVgPTMrn4ewAAAABJRU5ErkJggg=="
)


@dataclass
class TileServer:
    tiles: list[tuple[int, int, int]] = field(default_factory=list)
    base: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        z, x, y = (int(request.match_info[k]) for k in ("z", "x", "y"))
        self.tiles.append((z, x, y))
        return web.Response(body=PNG, content_type="image/png")


@asynccontextmanager
async def tile_server() -> AsyncIterator[TileServer]:
    fake = TileServer()
    app = web.Application()
    app.router.add_get(r"/{z:\d+}/{x:\d+}/{y:\d+}.png", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.base = f"http://127.0.0.1:{server.port}"
    try:
        yield fake
    finally:
        await server.close()
