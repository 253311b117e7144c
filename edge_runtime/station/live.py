"""Live data to any number of browsers without ever blocking the acquisition loop.

The acquisition thread calls :meth:`Broadcaster.publish`, which only appends to a bounded deque and,
at most once per batch, schedules a drain on the web server's event loop. Each browser has its own
bounded queue; when a slow browser's queue is full its oldest message is dropped (and counted). So
memory stays bounded whatever the clients do, and the acquisition thread never waits for a client.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

PENDING_MAX = 256  # messages waiting for the event loop (the loop drains them every few ms)
CLIENT_QUEUE_MAX = 64  # per browser: ~2.5 s of samples at 25 messages/s


class Broadcaster:
    """Fan one stream of server-sent-event messages out to every connected browser."""

    def __init__(self, client_queue_max: int = CLIENT_QUEUE_MAX) -> None:
        self.client_queue_max = client_queue_max
        self._pending: deque[str] = deque(maxlen=PENDING_MAX)
        self._lock = threading.Lock()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[asyncio.Queue] = set()
        self.dropped = 0  # messages dropped for slow clients (or before the loop drained them)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the server's event loop (called once at start-up)."""
        self._loop = loop

    @property
    def n_clients(self) -> int:
        return len(self._clients)

    def publish(self, message: str) -> None:
        """Queue ``message`` for every client; never blocks (safe from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
            self._pending.append(message)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is shutting down
            with self._lock:
                self._scheduled = False

    def _drain(self) -> None:
        with self._lock:
            messages = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        for queue in list(self._clients):
            for message in messages:
                if queue.full():
                    queue.get_nowait()
                    self.dropped += 1
                queue.put_nowait(message)

    def subscribe(self) -> asyncio.Queue:
        """A new client queue (call from the event loop)."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.client_queue_max)
        self._clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._clients.discard(queue)


def sse(event: str, data: str) -> str:
    """One server-sent event (``data`` must be a single line, e.g. compact JSON)."""
    return f"event: {event}\ndata: {data}\n\n"
