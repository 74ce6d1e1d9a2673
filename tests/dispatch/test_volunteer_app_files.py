"""The volunteer app's files: catalogues, the service worker's shell, how they are served."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from dispatch.web.handlers_pages import CSP, app_files

APP = Path(str(resources.files("dispatch.web") / "volunteer_app"))
CATALOGUES = sorted((APP / "i18n").glob("*.json"))
# Keys built at run time from a prefix and a value the server sends.
DYNAMIC = {
    "state_": "state",
    "reason_": "reason",
    "kind_": "kind",
    "credential_": "state",
    "dir_": "compass",
}


def _catalogue(path: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_english_and_dutch_catalogues_have_the_same_keys_and_placeholders() -> None:
    names = {p.stem for p in CATALOGUES}
    assert {"en", "nl"} <= names
    english = _catalogue(APP / "i18n" / "en.json")
    for path in CATALOGUES:
        other = _catalogue(path)
        assert sorted(set(other) ^ set(english)) == [], path.name
        for key, text in other.items():
            assert text.strip(), f"{path.name}: {key} is empty"
            assert _placeholders(text) == _placeholders(english[key]), f"{path.name}: {key}"


def test_every_string_the_app_uses_is_in_the_catalogue() -> None:
    english = _catalogue(APP / "i18n" / "en.json")
    html = (APP / "index.html").read_text()
    used = set(re.findall(r'data-i18n="([a-z_]+)"', html))
    for script in APP.glob("*.js"):
        used |= set(re.findall(r'\bt\("([a-z_]+)"', script.read_text()))
        # t(on ? "a" : "b") and friends: every quoted key inside a t( ... ) call.
        for call in re.findall(r"\bt\(([^()]*\?[^()]*)\)", script.read_text()):
            used |= set(re.findall(r'"([a-z_]+)"', call))
    assert used, "no strings found: the pattern no longer matches the code"
    missing = sorted(k for k in used if k not in english)
    assert missing == []
    for prefix in DYNAMIC:
        assert any(k.startswith(prefix) for k in english), prefix
    compass = {k for k in english if k.startswith("dir_")}
    assert compass == {f"dir_{p}" for p in ("N", "NE", "E", "SE", "S", "SW", "W", "NW")}


def test_the_service_worker_caches_exactly_the_shipped_files() -> None:
    script = (APP / "sw.js").read_text()
    shell = script.split("const SHELL = [")[1].split("];")[0]
    listed = set(re.findall(r'^\s+"([^"]+)",$', shell, re.M))
    shipped = {name for name in app_files() if name and name != "sw.js"}
    assert listed - {"./"} == shipped


def test_the_app_names_no_other_origin() -> None:
    """Every URL in the app is relative; the only absolute ones are map links the volunteer
    taps (and the SVG namespace), so the page itself fetches from nowhere else."""
    allowed = (
        "https://maps.apple.com/",
        "https://www.openstreetmap.org/directions",
        "http://www.w3.org/2000/svg",
    )
    for name, found in app_files().items():
        if not name or found.content_type.startswith("image/png"):
            continue
        text = found.body.decode()
        for url in re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+[^\s\"'`)]*", text):
            if url.startswith("//") and not re.match(r"//[a-z0-9-]+\.[a-z]", url):
                continue  # a JavaScript comment, not a URL
            assert url.startswith(allowed), f"{name}: {url}"
    html = app_files()["index.html"].body.decode()
    assert "<script>" not in html, "inline script would need a CSP exception"
    assert re.search(r"\s(style|on[a-z]+)=", html) is None, "inline style or handler"


@pytest.mark.storage
async def test_the_app_is_served_with_a_strict_policy(client: Any) -> None:
    resp = await client.get("/app/")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert resp.headers["Content-Security-Policy"] == CSP
    for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'"):
        assert directive in CSP
    for loose in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http"):
        assert loose not in CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    etag = resp.headers["ETag"]
    again = await client.get("/app/", headers={"If-None-Match": etag})
    assert again.status == 304
    for name, kind in (
        ("app.js", "text/javascript"),
        ("sw.js", "text/javascript"),
        ("i18n/nl.json", "application/json"),
        ("manifest.webmanifest", "application/manifest+json"),
        ("icon-192.png", "image/png"),
    ):
        resp = await client.get(f"/app/{name}")
        assert resp.status == 200, name
        assert resp.headers["Content-Type"].startswith(kind), name
        assert await resp.read() == app_files()[name].body
    manifest = await (await client.get("/app/manifest.webmanifest")).json(content_type=None)
    assert manifest["start_url"] == manifest["scope"] == "./"
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest["icons"]}


@pytest.mark.storage
@pytest.mark.parametrize(
    "path",
    [
        "/app/nothing.js",
        "/app/../v1/openapi.json.js",
        "/app/%2e%2e/%2e%2e/etc/passwd.js",
        "/app/i18n/../../handlers_pages.py",
        "/app/APP.JS",
    ],
)
async def test_only_shipped_files_are_served(client: Any, path: str) -> None:
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"


@pytest.mark.storage
async def test_the_bare_path_redirects_relatively_and_keeps_the_query(client: Any) -> None:
    resp = await client.get("/app?agency=abc", allow_redirects=False)
    assert resp.status == 308
    assert resp.headers["Location"] == "app/?agency=abc"
