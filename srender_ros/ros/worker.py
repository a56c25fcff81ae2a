"""A bounded keep-latest queue and the worker thread that drains it (no rclpy here).

ROS callbacks only validate and ``put``; the slow work (scheduling, generating, rendering) runs on
a :class:`Worker` thread, so the executor keeps answering parameters, status and new requests. When
the queue is full the *oldest* waiting item is dropped: for a robot, the newest path or pose is the
one that matters.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from srender_ros.errors import SrenderError

T = TypeVar("T")

_log = logging.getLogger(__name__)


class QueueClosed(Exception):
    """Raised by :meth:`KeepLatestQueue.get` once the queue is closed and empty."""


class KeepLatestQueue(Generic[T]):
    """Thread-safe FIFO holding at most ``maxlen`` items; a put into a full queue drops the oldest.

    ``maxlen=1`` is a keep-latest slot (the camera_pose input).
    """

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"KeepLatestQueue maxlen={maxlen}: must be >= 1")
        self._items: deque[T] = deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T) -> T | None:
        """Append ``item``; returns the item dropped to make room, or None.

        Raises:
            QueueClosed: after :meth:`close`.
        """
        with self._cond:
            if self._closed:
                raise QueueClosed("queue is closed")
            dropped = self._items.popleft() if len(self._items) >= self._maxlen else None
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, timeout_s: float | None = None) -> T | None:
        """Oldest item, waiting up to ``timeout_s`` (None: forever); None on timeout.

        Raises:
            QueueClosed: when the queue is closed (waiting items are discarded by close).
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout=timeout_s):
                return None
            if self._closed:
                raise QueueClosed("queue is closed")
            return self._items.popleft()

    def set_maxlen(self, maxlen: int) -> list[T]:
        """Change the bound; returns the oldest items dropped to fit."""
        if maxlen < 1:
            raise ValueError(f"KeepLatestQueue maxlen={maxlen}: must be >= 1")
        with self._cond:
            self._maxlen = maxlen
            dropped = []
            while len(self._items) > maxlen:
                dropped.append(self._items.popleft())
            return dropped

    def close(self) -> list[T]:
        """Wake every waiter with QueueClosed; returns the items that were still waiting."""
        with self._cond:
            self._closed = True
            left = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return left

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class Worker(Generic[T]):
    """A daemon thread that hands each queued item to ``handle`` until the queue is closed.

    ``handle`` errors never kill the thread: a SrenderError goes to ``on_error(item, exc)`` (the
    node refuses that request and reports it); any other exception is logged with its traceback
    (it is a bug) and also reported.
    """

    def __init__(self, name: str, queue: KeepLatestQueue[T], handle: Callable[[T], None],
                 on_error: Callable[[T, Exception], None]) -> None:
        self.name = name
        self._queue = queue
        self._handle = handle
        self._on_error = on_error
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True while an item is being handled."""
        return self._busy.is_set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the thread to end (close the queue first); True when it ended."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get()
            except QueueClosed:
                return
            if item is None:  # pragma: no cover - get() without timeout never returns None
                continue
            self._busy.set()
            try:
                self._handle(item)
            except SrenderError as exc:
                self._report(item, exc)
            except Exception as exc:
                _log.exception("%s: unexpected error while handling a request", self.name)
                self._report(item, exc)
            finally:
                self._busy.clear()

    def _report(self, item: T, exc: Exception) -> None:
        try:
            self._on_error(item, exc)
        except Exception:  # the reporter itself must not end the loop either
            _log.exception("%s: error while reporting an error", self.name)
