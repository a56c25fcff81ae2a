"""Reading an input bag with rosbags, every failure re-raised as a BagError naming the file.

:class:`BagSource` is what the replay reads: connections with ROS 2 type names and messages as CDR
bytes. :class:`InputBag` is a rosbag2 (MCAP or sqlite3); ``ros1.Ros1InputBag`` a ROS 1 bag converted
on the fly. :func:`open_input_bag` picks one by the file's content.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader

from srender_ros.errors import BagError, SrenderError

ROS1_MAGIC = b"#ROSBAG V"


class BagSource(Protocol):
    """An open input bag (context manager) as the replay sees it: ROS 2 types, CDR bytes."""

    path: Path

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def close(self) -> None: ...

    @property
    def connections(self) -> list[Connection]: ...

    @property
    def topics(self) -> dict[str, str]: ...

    @property
    def message_count(self) -> int: ...

    @property
    def span_ns(self) -> tuple[int, int]: ...

    @property
    def notes(self) -> list[str]:
        """Lines for the summary on how the input was read (type conversions, skipped topics)."""
        ...

    def require_topic(self, topic: str) -> list[Connection]: ...

    def messages(self, connections: Collection[Connection] = ()) -> Iterator[tuple[Connection, int, bytes]]: ...


def is_ros1_bag(path: Path | str) -> bool:
    """True for a file starting with the ROS 1 bag magic (``.bag``, also ``.bag.active``)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with p.open("rb") as f:
            return f.read(len(ROS1_MAGIC)) == ROS1_MAGIC
    except OSError:
        return p.suffix == ".bag"


def open_input_bag(path: Path | str) -> BagSource:
    """A ROS 1 bag (by its magic bytes, or a ``.bag`` name) or a rosbag2 folder / ``.mcap`` / ``.db3`` file.

    Raises:
        BagError: missing or unreadable input (the message names the file and, where known, the fix).
    """
    p = Path(path)
    if is_ros1_bag(p) or (p.suffix == ".bag" and not p.is_dir()):
        from srender_ros.bag.ros1 import Ros1InputBag

        return Ros1InputBag(p)
    return InputBag(p)


def topics_of(connections: Collection[Connection]) -> dict[str, str]:
    """topic -> message type, sorted by topic (a topic with several types shows the first)."""
    out: dict[str, str] = {}
    for c in sorted(connections, key=lambda c: c.topic):
        out.setdefault(c.topic, c.msgtype)
    return out


def require_topic(path: Path, connections: Collection[Connection], topic: str) -> list[Connection]:
    """Connections of ``topic``; BagError listing the topics present when there are none."""
    conns = [c for c in connections if c.topic == topic]
    if not conns:
        present = ", ".join(f"{t} ({ty})" for t, ty in topics_of(connections).items()) or "(none: the bag is empty)"
        raise BagError(f"topic {topic!r} is not in input bag {path}; topics present: {present}")
    return conns


class InputBag:
    """An open input bag (context manager). ``connections`` and ``topics`` are known after opening.

    Args:
        path: the bag directory (with metadata.yaml), or a single ``.mcap`` / ``.db3`` file.
    Raises:
        BagError: missing path, unreadable metadata, missing or corrupt storage files.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"input bag {self.path} does not exist")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except SrenderError:
            raise
        except Exception as exc:
            raise BagError(f"input bag {self.path} cannot be read ({type(exc).__name__}: {exc}); is it a rosbag2 "
                           "folder with metadata.yaml, or an .mcap / .db3 file, and complete?") from exc

    def __enter__(self) -> InputBag:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the storage files (idempotent)."""
        if self._reader.is_open:
            try:
                self._reader.close()
            except Exception:  # closing a half-broken bag must not hide the error that got us here
                pass

    @property
    def connections(self) -> list[Connection]:
        """All connections (topic, type, definition, QoS) in the bag."""
        return list(self._reader.connections)

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type, sorted by topic (a topic with several types shows the first)."""
        return topics_of(self._reader.connections)

    @property
    def notes(self) -> list[str]:
        """Nothing to say: a rosbag2 is copied as it is."""
        return []

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    @property
    def span_ns(self) -> tuple[int, int]:
        """(first, last) message log time in nanoseconds; (0, 0) for an empty bag."""
        if self._reader.message_count == 0:
            return (0, 0)
        # rosbags reports end_time one past the last message.
        return int(self._reader.start_time), int(self._reader.end_time) - 1

    def require_topic(self, topic: str) -> list[Connection]:
        """Connections of ``topic``; BagError listing the topics present when there are none."""
        return require_topic(self.path, self._reader.connections, topic)

    def messages(self, connections: Collection[Connection] = ()) -> Iterator[tuple[Connection, int, bytes]]:
        """(connection, log time ns, raw CDR bytes) in log-time order; all connections when empty.

        Raises:
            BagError: a storage file that turns out corrupt or truncated while reading.
        """
        it: Iterator[tuple[Connection, int, Any]] = self._reader.messages(connections=connections)
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except SrenderError:
                raise
            except Exception as exc:
                raise BagError(f"input bag {self.path} is corrupt or truncated: reading messages failed "
                               f"({type(exc).__name__}: {exc})") from exc
            conn, t_ns, raw = item
            yield conn, int(t_ns), bytes(raw) if not isinstance(raw, bytes) else raw
