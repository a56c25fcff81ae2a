"""Reading a ROS 1 bag (format 2.0, plain, bz2 or lz4 chunks) as if it were a rosbag2: ROS 2 type
names and CDR bytes, converted message by message with rosbags.

Each ROS 1 type is mapped once (:func:`plan_conversion`), by its definition stored in the bag:

- ``same``: the ROS 2 type of the same name has the same wire layout (field names may differ, e.g.
  CameraInfo's ``D K R P`` -> ``d k r p``); the bytes are re-encoded without decoding
  (``std_msgs/Header`` loses ``seq``).
- ``migrated``: the ROS 2 type has other fields (e.g. ``visualization_msgs/Marker``): decoded,
  copied field by field by name, new fields get defaults.
- ``kept``: no ROS 2 type of that name (e.g. ``rosgraph_msgs/Log``, custom types): the ROS 1
  definition is kept (``Header`` becomes ROS 2's) and written into the output bag with the messages.
- ``skipped``: the type cannot be converted (e.g. two connections define it differently); its
  messages are left out and the summary says so.

Renamed types: ``tf/tfMessage`` -> ``tf2_msgs/msg/TFMessage`` (rosbags' rename list); every
``pkg/Type`` is called ``pkg/msg/Type`` as in ROS 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.convert.converter import LATCH, STATIC_MSGTYPE_RENAMES, is_same_wireformat, migrate_message
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag1,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
    Nodetype,
)
from rosbags.rosbag1 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from srender_ros.bag import messages as m
from srender_ros.bag.reader import require_topic, topics_of
from srender_ros.errors import BagError, SrenderError

#: ROS 1 type -> ROS 2 type where the names differ beyond ``pkg/Type`` -> ``pkg/msg/Type``.
RENAMES: dict[str, str] = dict(STATIC_MSGTYPE_RENAMES)
HEADER = "std_msgs/msg/Header"
Converter = Callable[[bytes], bytes]


class Conversion(str, Enum):
    """How the messages of one ROS 1 type reach the output (see the module docstring)."""

    SAME = "same"
    MIGRATED = "migrated"
    KEPT = "kept"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class TypeConversion:
    """One ROS 1 type's mapping: ``ros2_type`` is what the output connection carries."""

    ros1_type: str
    ros2_type: str
    kind: Conversion
    reason: str = ""


def reindex_hint(path: Path) -> str:
    """What to do about an unindexed or truncated ROS 1 bag (rosbags reads only indexed bags)."""
    root, ext = os.path.splitext(path.name)  # rosbag keeps the original as <root>.orig<ext>
    orig = path.with_name(f"{root}.orig{ext}")
    return (f"a recording that was killed leaves its bag unindexed, and a cut copy loses the index at the end; rosbags "
            f"cannot rebuild it. Reindex it with ROS 1's tool: `rosbag reindex {path}` (it keeps the original as "
            f"{orig.name}; without a ROS 1 install: `apt install python3-rosbag` on Debian 12, or the ros:noetic Docker "
            "image), then run again")


def _open_error(path: Path, exc: BaseException) -> BagError:
    text = str(exc)
    what = f"input bag {path} cannot be read as a ROS 1 bag ({type(exc).__name__}: {text})"
    if "not indexed" in text or "index looks damaged" in text or "could not be read" in text or "Got only" in text:
        return BagError(f"{what}: it is unindexed or truncated; {reindex_hint(path)}")
    if "empty" in text:
        return BagError(f"{what}: the file is empty; was the recording started but never written?")
    if "encryption" in text:
        return BagError(f"{what}: decrypt it first with ROS 1's `rosbag decrypt`")
    if "Compression" in text:
        return BagError(f"{what}: rosbags reads uncompressed, bz2 and lz4 chunks only; "
                        f"`rosbag decompress {path}` (ROS 1) writes an uncompressed copy")
    if "magic" in text:
        return BagError(f"{what}: it does not start with '#ROSBAG V2.0', so it is no ROS 1 bag; a rosbag2 is a folder "
                        "with metadata.yaml, or an .mcap / .db3 file")
    if "version" in text:
        return BagError(f"{what}: only ROS 1 bag format 2.0 is read (every bag since ROS C Turtle, 2010)")
    return BagError(f"{what}; is it a complete ROS 1 bag?")


def plan_conversion(src: Typestore, dst: Typestore, ros1_type: str) -> tuple[TypeConversion, Converter | None]:
    """How to turn ROS 1 bytes of ``ros1_type`` (defined in ``src``) into CDR of a ROS 2 type in ``dst``.

    A type with no ROS 2 counterpart is registered in ``dst`` from its ROS 1 definition (``kept``).
    Never raises: a type that cannot be converted comes back ``skipped`` with the reason and no converter.
    """
    ros2_type = RENAMES.get(ros1_type, ros1_type)
    try:
        needed = _closure(src, ros1_type)
        kept = ros2_type not in dst.fielddefs
        if kept:
            missing = {(ros2_type if k == ros1_type else k): v for k, v in needed.items()
                       if k != HEADER and k not in dst.fielddefs}
            dst.register(missing)
        if is_same_wireformat(src, dst, ros1_type, ros2_type):
            conv: Converter = partial(_bytes, partial(dst.ros1_to_cdr, typename=ros2_type))
            kind = Conversion.KEPT if kept else Conversion.SAME
        else:
            conv = partial(_migrate, src, dst, ros1_type, ros2_type, {})
            kind = Conversion.KEPT if kept else Conversion.MIGRATED
        dst.generate_msgdef(ros2_type, ros_version=2)  # the output needs a definition: fail here, not later
        return TypeConversion(ros1_type, ros2_type, kind), conv
    except Exception as exc:
        reason = str(exc) if isinstance(exc, BagError) else f"{type(exc).__name__}: {exc}"
        return TypeConversion(ros1_type, ros2_type, Conversion.SKIPPED, reason), None


def _closure(store: Typestore, typename: str) -> dict[str, Any]:
    """``typename`` and every type it uses, as ``{name: (constants, fields)}`` from ``store``.

    Raises:
        BagError: a used type that no definition in the bag defines.
    """
    out: dict[str, Any] = {}
    todo = [typename]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        if name not in store.fielddefs:
            raise BagError(f"its definition in the bag uses {name}, which the bag does not define")
        out[name] = store.fielddefs[name]
        for _, desc in out[name][1]:
            sub = desc[1][0] if desc[0] in (Nodetype.ARRAY, Nodetype.SEQUENCE) else desc  # (element, size)
            if sub[0] == Nodetype.NAME:
                todo.append(sub[1])
    return out


def _bytes(fn: Callable[[bytes], memoryview], raw: bytes) -> bytes:
    return bytes(fn(raw))


def _migrate(src: Typestore, dst: Typestore, ros1_type: str, ros2_type: str, cache: dict[str, object], raw: bytes) -> bytes:
    msg = migrate_message(src, dst, ros1_type, ros2_type, cache, src.deserialize_ros1(raw, ros1_type))
    return bytes(dst.serialize_cdr(msg, ros2_type))


class Ros1InputBag:
    """An open ROS 1 bag (context manager) seen as a rosbag2: :class:`~srender_ros.bag.reader.BagSource`.

    ``connections`` carry ROS 2 type names, ROS 2 definitions and RIHS01 hashes, and rosbag2 QoS
    (latched ROS 1 topics such as ``/tf_static`` get transient-local); ``messages`` yields CDR bytes.
    Connections of ``skipped`` types are left out (see ``notes``).

    Args:
        path: the ``.bag`` file.
    Raises:
        BagError: missing, empty, unindexed, truncated, encrypted or otherwise unreadable bag.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"input bag {self.path} does not exist")
        if self.path.is_dir():
            raise BagError(f"input bag {self.path} is a folder; a ROS 1 bag is a single .bag file")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except SrenderError:
            raise
        except Exception as exc:
            raise _open_error(self.path, exc) from exc
        self.conversions: dict[str, TypeConversion] = {}
        self._skipped_topics: list[str] = []  # one summary line per left-out connection
        self._map: dict[int, tuple[Connection, Connection, Converter]] = {}  # ROS 2 id -> (ROS 1, ROS 2, converter)
        try:
            self._plan()
        except BaseException:
            self.close()
            raise

    def _plan(self) -> None:
        src, dst = get_typestore(Stores.EMPTY), m.make_typestore()
        unusable: dict[int, str] = {}  # connection id -> why its definition cannot be used
        for c in self._reader.connections:
            try:
                typs = get_types_from_msg(c.msgdef.data, c.msgtype)
                if any(k in src.fielddefs and src.fielddefs[k] != v for k, v in typs.items()):
                    unusable[c.id] = "defined differently by another connection"
                    continue
                src.register({k: v for k, v in typs.items() if k not in src.fielddefs})
            except Exception as exc:  # a definition rosbags cannot parse: that topic is skipped, the rest read
                unusable[c.id] = f"its definition in the bag does not parse ({type(exc).__name__}: {exc})"
        converters: dict[str, Converter | None] = {}
        for c in self._reader.connections:
            if c.id in unusable:
                self._skipped_topics.append(f"skipped {c.topic} ({c.msgtype}, {c.msgcount} messages): {unusable[c.id]}")
                continue
            if c.msgtype not in self.conversions:
                self.conversions[c.msgtype], converters[c.msgtype] = plan_conversion(src, dst, c.msgtype)
            tc, conv = self.conversions[c.msgtype], converters[c.msgtype]
            if conv is None:
                self._skipped_topics.append(f"skipped {c.topic} ({c.msgtype}, {c.msgcount} messages): {tc.reason}")
                continue
            ext = c.ext
            latched = isinstance(ext, ConnectionExtRosbag1) and bool(ext.latching)
            out = Connection(
                id=c.id, topic=c.topic, msgtype=tc.ros2_type,
                msgdef=MessageDefinition(MessageDefinitionFormat.MSG, dst.generate_msgdef(tc.ros2_type, ros_version=2)[0]),
                digest=dst.hash_rihs01(tc.ros2_type), msgcount=c.msgcount,
                ext=ConnectionExtRosbag2("cdr", list(LATCH) if latched else []), owner=self)
            self._map[c.id] = (c, out, conv)

    def __enter__(self) -> Ros1InputBag:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._reader.bio is not None:
            try:
                self._reader.close()
            except Exception:  # closing a half-broken bag must not hide the error that got us here
                pass

    @property
    def connections(self) -> list[Connection]:
        """Converted connections (ROS 2 types), in the bag's order; skipped ones are absent."""
        return [out for _, out, _ in self._map.values()]

    @property
    def topics(self) -> dict[str, str]:
        """topic -> ROS 2 message type, sorted by topic."""
        return topics_of(self.connections)

    @property
    def message_count(self) -> int:
        """Messages that will be read (those of skipped types not counted)."""
        return sum(c.msgcount for c in self.connections)

    @property
    def span_ns(self) -> tuple[int, int]:
        """(first, last) message log time in nanoseconds; (0, 0) for an empty bag."""
        if self._reader.message_count == 0:
            return (0, 0)
        return int(self._reader.start_time), int(self._reader.end_time) - 1  # end_time is one past the last

    @property
    def notes(self) -> list[str]:
        """Summary lines: the input was ROS 1; renamed, migrated, kept and skipped types."""
        tcs = sorted(self.conversions.values(), key=lambda t: t.ros1_type)
        lines = [f"ROS 1 bag, {self.message_count} messages converted to ROS 2 (CDR)"]
        renamed = [f"{t.ros1_type} -> {t.ros2_type}" for t in tcs if t.ros1_type != t.ros2_type
                   and t.kind is not Conversion.SKIPPED]
        if renamed:
            lines.append("renamed: " + ", ".join(renamed))
        migrated = [t.ros2_type for t in tcs if t.kind is Conversion.MIGRATED]
        if migrated:
            lines.append("migrated (ROS 2 fields differ; copied by name, new fields default): " + ", ".join(migrated))
        kept = [t.ros2_type for t in tcs if t.kind is Conversion.KEPT]
        if kept:
            lines.append("kept as is (no ROS 2 type; ROS 1 definition written to the output): " + ", ".join(kept))
        return lines + self._skipped_topics

    def require_topic(self, topic: str) -> list[Connection]:
        """Connections of ``topic``; BagError listing the topics present when there are none."""
        return require_topic(self.path, self.connections, topic)

    def messages(self, connections: Collection[Connection] = ()) -> Iterator[tuple[Connection, int, bytes]]:
        """(converted connection, log time ns, CDR bytes) in log-time order; all when ``connections`` is empty.

        Raises:
            BagError: a chunk that turns out truncated or corrupt, or a message that does not decode.
        """
        ids = [c.id for c in connections] if connections else list(self._map)
        wanted = [self._map[i][0] for i in ids if i in self._map]
        if not wanted:  # rosbags reads every connection for an empty list; skipped ones must stay out
            return
        it = self._reader.messages(connections=wanted)
        while True:
            try:
                c1, t_ns, raw = next(it)
            except StopIteration:
                return
            except Exception as exc:
                raise BagError(f"input bag {self.path} is corrupt or truncated: reading messages failed "
                               f"({type(exc).__name__}: {exc}); {reindex_hint(self.path)}") from exc
            _, out, conv = self._map[c1.id]
            try:
                data = conv(raw)
            except Exception as exc:
                raise BagError(f"input bag {self.path}: message on {c1.topic} at log time {t_ns / 1e9:.3f} s does not "
                               f"convert from ROS 1 {c1.msgtype} to ROS 2 {out.msgtype} ({type(exc).__name__}: {exc}); "
                               "the bag may be corrupt") from exc
            yield out, int(t_ns), data
