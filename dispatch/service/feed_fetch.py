"""Fetching a feed document: whole, bounded, decoded, and only when it changed.

The body is read to its end or to the size limit, whichever comes first (one
``read(n)`` returns one network chunk, not n bytes). aiohttp asks for and
decodes gzip/deflate itself, in bounded steps, so the limit applies to the
decoded document. ``ETag``/``Last-Modified`` from the last good poll are sent
back, so an unchanged feed costs one 304 and no parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp

MAX_FEED_BYTES: Final = 8 * 1024 * 1024
_MAX_VALIDATOR: Final = 512


class FeedFetchError(Exception):
    """The feed could not be read; the message says why (it is shown to supervisors)."""


@dataclass(frozen=True, slots=True)
class Validators:
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes | None
    """None: the server answered 304, the document is the one of the last good poll."""
    validators: Validators


def _validator(value: str | None) -> str | None:
    # Sent back as a request header: never anything that could split or bloat one.
    if value is None or len(value) > _MAX_VALIDATOR or any(c in value for c in "\r\n\0"):
        return None
    return value


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise FeedFetchError(f"feed body larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def fetch_feed(
    http: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    max_bytes: int = MAX_FEED_BYTES,
    validators: Validators | None = None,
) -> Fetched:
    """GET the feed within ``timeout_s`` (connect, answer and the whole body)."""
    request_headers = dict(headers)
    conditional = validators is not None and bool(validators.etag or validators.last_modified)
    if validators is not None and validators.etag:
        request_headers["If-None-Match"] = validators.etag
    if validators is not None and validators.last_modified:
        request_headers["If-Modified-Since"] = validators.last_modified
    timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0))
    try:
        async with http.get(
            url, headers=request_headers, timeout=timeout, allow_redirects=False
        ) as resp:
            if resp.status == 304 and conditional:
                assert validators is not None
                return Fetched(None, validators)
            if resp.status != 200:
                raise FeedFetchError(f"HTTP {resp.status} {resp.reason or ''}".strip())
            declared = resp.content_length
            if (
                declared is not None
                and declared > max_bytes
                and not resp.headers.get("Content-Encoding")
            ):
                raise FeedFetchError(
                    f"feed body of {declared} bytes is larger than the limit of {max_bytes} bytes"
                )
            body = await _read_capped(resp, max_bytes)
            return Fetched(
                body,
                Validators(
                    _validator(resp.headers.get("ETag")),
                    _validator(resp.headers.get("Last-Modified")),
                ),
            )
    except TimeoutError:
        raise FeedFetchError(f"TimeoutError: no complete answer within {timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        raise FeedFetchError(f"{type(exc).__name__}: {exc}") from None
