"""The volunteer app's files at ``/app/``: package data, served as they are, no build step.

Only the files shipped in ``dispatch/web/volunteer_app/`` are served, by name from a table
read once at start-up, so no path from a request ever reaches the file system. Every
answer carries a strict Content-Security-Policy (this origin only, no inline code), and
every link inside the app is relative, so it works unchanged behind a proxy that puts
the service on a path prefix (``DISPATCH_PUBLIC_BASE_URL``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

from aiohttp import web

from dispatch.web.problems import not_found

routes = web.RouteTableDef()

PAGE_ROUTE_PREFIX: Final = "page:"
"""Route names of pages for people start with this; the OpenAPI document leaves them out."""

APP_ROOT: Final = "/app/"

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

CSP: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "media-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
    # Revalidated on every load (cheap, ETag), so an update reaches phones at once; the
    # service worker keeps its own copy for slow or absent networks.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class AppFile:
    body: bytes
    content_type: str
    etag: str


@cache
def app_files() -> dict[str, AppFile]:
    """Every shipped file by its path below ``/app/`` (``""`` is the index page)."""
    root = resources.files("dispatch.web") / "volunteer_app"
    found: dict[str, AppFile] = {}

    def walk(folder: resources.abc.Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if suffix not in _TYPES:
                continue
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[prefix + entry.name] = AppFile(body, _TYPES[suffix], etag)

    walk(root, "")
    found[""] = found["index.html"]
    return found


def _serve(request: web.Request, name: str) -> web.Response:
    found = app_files().get(name)
    if found is None:
        raise not_found("file")
    # No Service-Worker-Allowed header: the worker at /app/sw.js controls /app/ and no more.
    headers = {**_HEADERS, "ETag": found.etag}
    if request.headers.get("If-None-Match") == found.etag:
        return web.Response(status=304, headers=headers)
    response = web.Response(body=found.body, headers=headers)
    response.headers["Content-Type"] = found.content_type
    return response


@routes.get("/app", name=f"{PAGE_ROUTE_PREFIX}app-bare")
async def app_bare(request: web.Request) -> web.Response:
    # Relative, so a proxy's path prefix is kept: /prefix/app -> /prefix/app/ (query kept:
    # an agency's sign-up link carries its id there).
    query = request.rel_url.raw_query_string
    raise web.HTTPPermanentRedirect(location="app/" + (f"?{query}" if query else ""))


@routes.get(APP_ROOT, name=f"{PAGE_ROUTE_PREFIX}app-index")
async def app_index(request: web.Request) -> web.Response:
    return _serve(request, "")


@routes.get(APP_ROOT + "{name:[a-z0-9_/-]+\\.[a-z]+}", name=f"{PAGE_ROUTE_PREFIX}app-file")
async def app_file(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"])
