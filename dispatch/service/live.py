"""The ``live`` channel: alerts pushed down the open app's event stream (``GET /v1/me/stream``).

A volunteer whose app is open holds a stream on one of the service's processes.
The outbox worker of that process sees it (:meth:`LiveHub.has_stream`) when it
plans an alert's chain, sends the alert down the stream at once, and starts the
push only after the push window, if the app has not acknowledged by then. A
stream held by another process is not seen: that volunteer's chain starts with
the push at once, exactly as without a stream.

Each event carries the same JSON a Web Push payload does (``title``, ``body``,
``data`` with the push data keys), so the app handles both with one function.
Streams are bounded: a stream that stops reading loses events beyond its queue
rather than growing memory, and such an event counts as not delivered.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

from notify.payload import push_data
from notify.ports import AlertMessage, Channel, DeliveryOutcome, DeliveryResult

NO_STREAM: Final = "no_stream"
"""``DeliveryResult.error_code`` when the volunteer has no open stream in this process."""
QUEUE_SIZE: Final = 32
STREAMS_PER_VOLUNTEER: Final = 4
"""A fifth stream (a fifth tab or device) ends the oldest."""


@dataclass(frozen=True, slots=True)
class LiveEvent:
    name: str
    """``alert``, ``stand_down`` or ``test``: the SSE ``event:`` field."""
    data: dict[str, Any]
    event_id: str


@dataclass(eq=False)
class LiveStream:
    volunteer_id: int
    queue: asyncio.Queue[LiveEvent | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )

    def end(self) -> None:
        """Ask the handler serving this stream to finish (it reads None)."""
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            # A stream that does not read is ended by making room for the end mark.
            self.queue.get_nowait()
            self.queue.put_nowait(None)


class LiveHub:
    """The open streams of this process, by volunteer."""

    def __init__(self) -> None:
        self._streams: defaultdict[int, list[LiveStream]] = defaultdict(list)
        self._ids = itertools.count(1)
        self.closed = False

    def open(self, volunteer_id: int) -> LiveStream:
        stream = LiveStream(volunteer_id)
        held = self._streams[volunteer_id]
        held.append(stream)
        while len(held) > STREAMS_PER_VOLUNTEER:
            held.pop(0).end()
        if self.closed:
            stream.end()
        return stream

    def close(self, stream: LiveStream) -> None:
        held = self._streams.get(stream.volunteer_id)
        if held is None:
            return
        if stream in held:
            held.remove(stream)
        if not held:
            del self._streams[stream.volunteer_id]

    def has_stream(self, volunteer_id: int) -> bool:
        return bool(self._streams.get(volunteer_id))

    def __len__(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def publish(self, volunteer_id: int, name: str, data: dict[str, Any]) -> int:
        """Queue an event on each of the volunteer's streams; how many took it."""
        event = LiveEvent(name, data, f"{next(self._ids)}")
        taken = 0
        for stream in list(self._streams.get(volunteer_id, ())):
            try:
                stream.queue.put_nowait(event)
                taken += 1
            except asyncio.QueueFull:
                continue
        return taken

    async def shutdown(self, _app: object = None) -> None:
        """End every stream (an ``on_shutdown`` hook: open streams would hold shutdown up)."""
        self.closed = True
        for held in list(self._streams.values()):
            for stream in held:
                stream.end()


def live_payload(message: AlertMessage) -> dict[str, Any]:
    """The event's JSON: what a Web Push payload carries, plus ``type``."""
    data = push_data(message)
    return {
        "type": data.get("type", "alert"),
        "title": message.title,
        "body": message.body,
        "data": data,
    }


class LiveNotifier:
    """:class:`notify.ports.Notifier` for the live channel (the address is unused)."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    @property
    def channel(self) -> Channel:
        return Channel.LIVE

    async def send(self, message: AlertMessage, *, timeout_s: float) -> DeliveryResult:
        started = time.perf_counter()
        payload = live_payload(message)
        taken = self.hub.publish(message.volunteer_id, str(payload["type"]), payload)
        latency = (time.perf_counter() - started) * 1000.0
        if taken == 0:
            return DeliveryResult(
                channel=Channel.LIVE,
                outcome=DeliveryOutcome.PERMANENT,
                latency_ms=latency,
                error_code=NO_STREAM,
                detail="no open stream in this process",
            )
        return DeliveryResult(
            channel=Channel.LIVE,
            outcome=DeliveryOutcome.ACCEPTED,
            latency_ms=latency,
            provider_message_id=f"live-{message.alert_id}-{taken}",
        )

    async def aclose(self) -> None:
        await self.hub.shutdown()


__all__ = ["NO_STREAM", "LiveEvent", "LiveHub", "LiveNotifier", "LiveStream", "live_payload"]
