"""A fake CAD feed endpoint: serves a JSON document as real servers do.

Scriptable per test: stream the body in small chunks (as a slow server or a proxy
does), gzip it when the client accepts gzip, answer conditional requests with 304
(``ETag`` and ``Last-Modified``), fail with a status, or stall. Every request's
headers are recorded.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

CAD_MAPPING: dict[str, Any] = {
    "items": "data.incidents",
    "fields": {
        "id": "ID",
        "call_type_code": "Type",
        "call_type_text": "TypeText",
        "received_at": "Received",
        "lat": "Latitude",
        "lon": "Longitude",
        "address": "Address",
    },
}
"""How a feed reads the fake CAD's documents: ``{"data": {"incidents": [...]}}`` of items
with these keys (what the feed tests serve)."""


@dataclass
class FeedServer:
    document: Any = field(default_factory=list)
    raw: bytes | None = None
    """Served instead of ``document`` when set (broken or hand-made bodies)."""
    status: int = 200
    delay_s: float = 0.0
    chunk_size: int | None = None
    """Write the body in chunks of this many bytes, yielding between them."""
    gzip: bool = False
    conditional: bool = False
    """Send ETag/Last-Modified and answer a matching conditional request with 304."""
    requests: list[dict[str, str]] = field(default_factory=list)
    bodies_sent: int = 0
    _modified: dict[bytes, datetime] = field(default_factory=dict)

    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.document).encode("utf-8")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="down")
        body = self.body()
        headers = {"Content-Type": "application/json"}
        if self.conditional:
            digest = hashlib.sha256(body).digest()
            modified = self._modified.setdefault(digest, datetime.now(UTC).replace(microsecond=0))
            etag = f'"{digest[:8].hex()}"'
            headers |= {"ETag": etag, "Last-Modified": format_datetime(modified, usegmt=True)}
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers=headers)
        if self.gzip and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        self.bodies_sent += 1
        if self.chunk_size is None:
            return web.Response(body=body, headers=headers)
        resp = web.StreamResponse(headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), self.chunk_size):
            await resp.write(body[start : start + self.chunk_size])
            await asyncio.sleep(0.002)  # let each chunk leave as its own segment
        await resp.write_eof()
        return resp


@asynccontextmanager
async def serving(fake: FeedServer, path: str = "/active.json") -> AsyncIterator[str]:
    """Run ``fake`` on 127.0.0.1; yields its URL."""
    app = web.Application()
    app.router.add_get(path, fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url(path))
    finally:
        await server.close()
