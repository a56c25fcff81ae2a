"""Writing the output bag safely: into a hidden sibling folder, renamed into place only when complete.

A crash, Ctrl-C or a full disk while writing leaves no bag at the output path that looks complete
(and an existing output, when ``overwrite`` was asked for, is untouched until the new one is done).
Input connections are copied with their message definitions, hashes and QoS, so messages of types
we do not know (custom types) pass through as raw bytes and stay readable where they were before.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinitionFormat
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from srender_ros.errors import BagError

log = logging.getLogger(__name__)

#: Written when a connection carries no type hash and the type is unknown (rosbags needs a value).
UNKNOWN_RIHS01 = "RIHS01_" + "0" * 64


class Storage(str, Enum):
    """rosbag2 storage plugin of the output."""

    MCAP = "mcap"
    SQLITE3 = "sqlite3"

    @property
    def plugin(self) -> StoragePlugin:
        return StoragePlugin.MCAP if self is Storage.MCAP else StoragePlugin.SQLITE3


def check_output_path(output: Path, inputs: list[Path], overwrite: bool) -> None:
    """Refuse an output that exists (unless ``overwrite``) or that is, contains or is inside an input."""
    out = output.resolve()
    for inp in inputs:
        src = inp.resolve()
        if out == src or src.is_relative_to(out) or out.is_relative_to(src):
            raise BagError(f"output {output} would overwrite or nest inside input {inp}; choose another --output")
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise BagError(f"output {output} exists; pass --overwrite to replace it, or choose another --output")
        if not output.is_dir():
            raise BagError(f"output {output} exists and is not a bag folder; refusing to replace it")
    if not output.parent.is_dir():
        raise BagError(f"output folder {output.parent} does not exist; create it first")


class OutputBag:
    """A rosbag2 being written (context manager). On a clean exit it appears at ``path``; on any
    exception nothing appears there and the partial data is deleted.

    Args:
        path: the output bag folder.
        typestore: types for the topics we add (``add_topic``).
        storage: MCAP (default) or sqlite3.
        overwrite: replace an existing bag folder at ``path`` (only once the new one is complete).
    """

    def __init__(self, path: Path | str, typestore: Typestore, storage: Storage = Storage.MCAP,
                 overwrite: bool = False) -> None:
        self.path = Path(path)
        self.typestore = typestore
        self.storage = Storage(storage)
        self.overwrite = overwrite
        check_output_path(self.path, [], overwrite)
        # The bag is written as <tmpdir>/<name>, so its storage file already has its final name
        # (<name>.mcap) and one rename of a folder on the same file system publishes it.
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=self.path.parent))
        self._writer: Writer | None = Writer(self._tmpdir / self.path.name, version=Writer.VERSION_LATEST,
                                             storage_plugin=self.storage.plugin)
        self._conns: dict[tuple[str, str, Any], Connection] = {}
        self.counts: dict[str, int] = {}
        try:
            self._writer.open()
        except Exception as exc:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            raise BagError(f"cannot create output bag {self.path}: {exc}") from exc

    def __enter__(self) -> OutputBag:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    # -- connections ------------------------------------------------------------------------
    def add_passthrough(self, conn: Connection) -> Connection:
        """An output connection mirroring input ``conn`` (topic, type, definition, hash, QoS).

        Input connections that differ only in something we do not copy map to one output connection.
        """
        assert self._writer is not None
        ext = conn.ext
        qos = list(ext.offered_qos_profiles) if isinstance(ext, ConnectionExtRosbag2) else []
        fmt = ext.serialization_format if isinstance(ext, ConnectionExtRosbag2) else "cdr"
        key = (conn.topic, conn.msgtype, (fmt, tuple(qos)))
        if key in self._conns:
            return self._conns[key]
        msgdef, digest = conn.msgdef.data, conn.digest
        known = conn.msgtype in self.typestore.types
        if conn.msgdef.format == MessageDefinitionFormat.NONE or not msgdef:
            if known:
                msgdef = self.typestore.generate_msgdef(conn.msgtype, ros_version=2)[0]
            else:
                # Old bags (rosbag2 < 8) store no definitions: the bytes still pass through unchanged.
                log.warning("topic %s: type %s has no message definition in the input and is unknown here; its "
                            "messages are copied but tools may not decode them", conn.topic, conn.msgtype)
                msgdef = ""
        if not digest:
            digest = self.typestore.hash_rihs01(conn.msgtype) if known else UNKNOWN_RIHS01
        out = self._add(conn.topic, conn.msgtype, msgdef=msgdef, rihs01=digest, serialization_format=fmt,
                        offered_qos_profiles=qos)
        self._conns[key] = out
        return out

    def add_topic(self, topic: str, msgtype: str) -> Connection:
        """A new connection for a type in the typestore (default QoS). Reuses an equal one."""
        key = (topic, msgtype, ("cdr", ()))
        if key not in self._conns:
            if msgtype not in self.typestore.types:
                raise BagError(f"message type {msgtype} is not registered; cannot write topic {topic}")
            msgdef = self.typestore.generate_msgdef(msgtype, ros_version=2)[0]
            self._conns[key] = self._add(topic, msgtype, msgdef=msgdef, rihs01=self.typestore.hash_rihs01(msgtype),
                                         serialization_format="cdr", offered_qos_profiles=[])
        return self._conns[key]

    def _add(self, topic: str, msgtype: str, **kw: Any) -> Connection:
        assert self._writer is not None
        try:
            return self._writer.add_connection(topic, msgtype, **kw)
        except Exception as exc:
            raise self._write_error(exc) from exc

    # -- writing ----------------------------------------------------------------------------
    def write_raw(self, conn: Connection, log_time_ns: int, data: bytes) -> None:
        """Append serialized bytes at ``log_time_ns`` (callers write in time order)."""
        if self._writer is None:
            raise BagError(f"output bag {self.path} is already closed")
        try:
            self._writer.write(conn, int(log_time_ns), data)
        except Exception as exc:
            raise self._write_error(exc) from exc
        self.counts[conn.topic] = self.counts.get(conn.topic, 0) + 1

    def write(self, conn: Connection, log_time_ns: int, msg: Any) -> None:
        """Serialize a message value of ``conn``'s type (CDR) and append it."""
        self.write_raw(conn, log_time_ns, bytes(self.typestore.serialize_cdr(msg, conn.msgtype)))

    def _write_error(self, exc: BaseException) -> BagError:
        hint = " (the disk is full)" if isinstance(exc, OSError) and exc.errno == errno.ENOSPC else ""
        return BagError(f"writing output bag {self.path} failed{hint}: {type(exc).__name__}: {exc}; "
                        "nothing was written there")

    # -- finishing --------------------------------------------------------------------------
    def commit(self) -> None:
        """Finish the bag and move it to ``path`` (replacing the old one only now, if allowed)."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.close()
            staged = self._tmpdir / self.path.name
            if self.path.exists():
                check_output_path(self.path, [], self.overwrite)
                # A folder cannot be renamed over a non-empty one: move the old one aside first, and
                # back if the swap fails, so one of the two complete bags is always at the path.
                old = self._tmpdir / f"{self.path.name}.old"
                os.replace(self.path, old)
                try:
                    os.replace(staged, self.path)
                except BaseException:
                    os.replace(old, self.path)
                    raise
            else:
                os.replace(staged, self.path)
        except BaseException as exc:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            if isinstance(exc, Exception) and not isinstance(exc, BagError):
                raise self._write_error(exc) from exc
            raise
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def abort(self) -> None:
        """Drop everything written so far; ``path`` is left as it was."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.abort()
            except Exception:  # the partial data is deleted below either way
                pass
        shutil.rmtree(self._tmpdir, ignore_errors=True)
