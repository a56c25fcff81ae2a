"""A pure TF buffer: static and time-stamped transforms, looked up between any two frames.

It does what tf2's ``lookupTransform(target, source, time)`` does for a recorded bag, without ROS:
frames form a forest (every child has one parent); a lookup walks from both frames up to their
common ancestor and composes the links, each interpolated at the query time (linear translation,
slerp rotation). Static links hold at every time. Times outside a moving link's data are refused
(``OutsidePolicy.REFUSE``, tf2's ``ExtrapolationException``) or held at the nearest sample
(``OutsidePolicy.CLAMP``). Like tf2, gaps inside the data are bridged by interpolation however long
they are.

Live use (the node's sensor cameras): ``TfBuffer(cache_s=10)`` keeps each moving link's samples of
the last ``cache_s`` seconds (tf2's default cache is 10 s) and rebuilds only the links that changed
since the last lookup. Not thread-safe: callers serialize access (``srender_ros.ros.tf_listener``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.geometry import make_transform, matrix_to_quat_wxyz, quat_wxyz_to_matrix, slerp_wxyz
from srender_ros.errors import TfError

NS_PER_S = 1_000_000_000


class OutsidePolicy(str, Enum):
    """What a lookup does at a time outside a moving link's recorded span."""

    REFUSE = "refuse"  # raise TfError naming the link and its span (tf2's behaviour)
    CLAMP = "clamp"  # hold the first / last recorded transform


@dataclass(frozen=True, eq=False)
class _Link:
    """parent -> child: T_parent_child as translations + quaternions, ascending stamps (none if static)."""

    parent: str
    child: str
    stamps_ns: NDArray[np.int64]  # [K]; empty for a static link
    t_m: NDArray[np.float64]  # [K, 3] (or [1, 3] static)
    q_wxyz: NDArray[np.float64]  # [K, 4] (or [1, 4] static)

    @property
    def is_static(self) -> bool:
        return len(self.stamps_ns) == 0

    def span_ns(self) -> tuple[int, int]:
        return int(self.stamps_ns[0]), int(self.stamps_ns[-1])


def _fmt_s(stamp_ns: int) -> str:
    return f"{stamp_ns / NS_PER_S:.3f} s"


class TfBuffer:
    """Collects transforms (from /tf and /tf_static, or any source), then answers lookups.

    Add everything first, then look up: adding after a lookup is allowed (the next lookup rebuilds).
    A child frame with two different parents is refused, as in tf2 a frame has exactly one parent.
    """

    def __init__(self, cache_s: float | None = None) -> None:
        """Args:
            cache_s: keep each moving link's samples up to this many seconds older than its newest
                one (None: keep everything, as a bag replay wants).
        """
        self._static: dict[str, tuple[str, NDArray[np.float64]]] = {}  # child -> (parent, [4, 4])
        self._dynamic: dict[str, tuple[str, list[int], list[NDArray[np.float64]]]] = {}  # child -> samples
        self._links: dict[str, _Link] | None = None
        self._stale: set[str] = set()  # children whose link must be rebuilt
        self.cache_ns = None if cache_s is None else int(cache_s * NS_PER_S)

    # -- filling -----------------------------------------------------------------------------
    def _check_parent(self, parent: str, child: str, static: bool) -> None:
        if not parent or not child:
            raise TfError(f"transform with an empty frame id (parent {parent!r}, child {child!r}); "
                           "every TF transform needs header.frame_id and child_frame_id")
        if parent == child:
            raise TfError(f"transform from frame {child!r} to itself; a TF link needs two different frames")
        other = self._dynamic.get(child) if static else self._static.get(child)
        if other is not None:
            kind = "moving (/tf)" if static else "static (/tf_static)"
            raise TfError(f"frame {child!r} has both a static and a moving parent: it is already the child of "
                           f"{other[0]!r} as a {kind} link; a frame may have one parent only")
        same = self._static.get(child) if static else self._dynamic.get(child)
        if same is not None and same[0] != parent:
            raise TfError(f"frame {child!r} has two parents, {same[0]!r} and {parent!r}; a TF frame may have "
                           "one parent only (re-parenting during a recording is not supported)")

    def add_static(self, parent: str, child: str, T_parent_child: NDArray[np.floating]) -> None:
        """A transform valid at all times (``/tf_static``). A later one for the same child replaces it.

        Args:
            parent, child: frame ids (``header.frame_id``, ``child_frame_id``).
            T_parent_child: [4, 4] rigid transform taking child coordinates to parent coordinates.
        """
        self._check_parent(parent, child, static=True)
        self._static[child] = (parent, np.asarray(T_parent_child, dtype=np.float64).reshape(4, 4).copy())
        self._stale.add(child)

    def add_dynamic(self, parent: str, child: str, stamp_ns: int, T_parent_child: NDArray[np.floating]) -> None:
        """One time-stamped sample of a moving link (``/tf``). Samples may arrive in any order; for
        duplicate stamps the last one added wins.

        Args:
            parent, child: frame ids.
            stamp_ns: the transform's ``header.stamp`` in nanoseconds.
            T_parent_child: [4, 4] rigid transform.
        """
        self._check_parent(parent, child, static=False)
        entry = self._dynamic.setdefault(child, (parent, [], []))
        entry[1].append(int(stamp_ns))
        entry[2].append(np.asarray(T_parent_child, dtype=np.float64).reshape(4, 4))
        self._stale.add(child)

    # -- structure ---------------------------------------------------------------------------
    def _build(self) -> dict[str, _Link]:
        if self._links is not None and not self._stale:
            return self._links
        links = {} if self._links is None else self._links
        todo = set(self._static) | set(self._dynamic) if self._links is None else self._stale
        for child in todo:
            if child in self._static:
                parent, T = self._static[child]
                T = T[None]
                links[child] = _Link(parent, child, np.zeros(0, np.int64), T[:, :3, 3],
                                     matrix_to_quat_wxyz(T[:, :3, :3]))
                continue
            parent, stamps, Ts = self._dynamic[child]
            st = np.asarray(stamps, dtype=np.int64)
            T_all = np.stack(Ts)
            # Stable sort, then keep the last sample per stamp (a re-sent transform replaces the old one).
            order = np.argsort(st, kind="stable")
            st, T_all = st[order], T_all[order]
            keep = np.append(st[1:] != st[:-1], True)
            if self.cache_ns is not None:
                keep &= st >= st[-1] - self.cache_ns
            st, T_all = st[keep], T_all[keep]
            if len(st) < len(stamps):  # forget what the cache dropped (and duplicates)
                self._dynamic[child] = (parent, st.tolist(), list(T_all))
            q = matrix_to_quat_wxyz(T_all[:, :3, :3])
            links[child] = _Link(parent, child, st, T_all[:, :3, 3].copy(), q)
        self._links = links
        self._stale = set()
        return links

    @property
    def frames(self) -> list[str]:
        """Every frame id seen, sorted."""
        links = self._build()
        return sorted(set(links) | {lk.parent for lk in links.values()})

    def parent_of(self, frame: str) -> str | None:
        """The parent frame id, or None for a root (or unknown) frame."""
        link = self._build().get(frame)
        return link.parent if link else None

    def is_static_link(self, child: str) -> bool:
        """True when ``child`` hangs off its parent by a static transform."""
        link = self._build().get(child)
        return bool(link and link.is_static)

    def link_stamps_ns(self, child: str) -> NDArray[np.int64]:
        """[K] ascending sample stamps of the moving link above ``child`` (empty when static or a root)."""
        link = self._build().get(child)
        return link.stamps_ns.copy() if link else np.zeros(0, np.int64)

    def _ancestors(self, frame: str) -> list[str]:
        """[frame, parent, grandparent, ..., root]."""
        links = self._build()
        chain = [frame]
        while chain[-1] in links:
            chain.append(links[chain[-1]].parent)
            if len(chain) > len(links) + 1:
                raise TfError(f"the TF tree has a loop through frame {frame!r}: {' -> '.join(chain[-6:])}")
        return chain

    def chain(self, target_frame: str, source_frame: str) -> tuple[list[str], list[str]]:
        """The links a lookup composes.

        Returns:
            (up, down): child frames of the links from ``source_frame`` up to the common ancestor, and
            child frames of the links from ``target_frame`` up to it.
        Raises:
            TfError: a frame is unknown (lists the known frames) or the two are in unconnected trees
            (names both roots: the missing link is a transform between them).
        """
        known = self.frames
        for name, frame in (("target", target_frame), ("source", source_frame)):
            if frame not in known:
                raise TfError(f"{name} frame {frame!r} is not in the TF data; frames present: "
                               f"{', '.join(known) if known else '(none: no /tf or /tf_static transforms)'}")
        up_src = self._ancestors(source_frame)
        up_tgt = self._ancestors(target_frame)
        common = next((f for f in up_src if f in set(up_tgt)), None)
        if common is None:
            raise TfError(
                f"no TF path from {target_frame!r} to {source_frame!r}: they are in unconnected trees, "
                f"{target_frame!r} under root {up_tgt[-1]!r} ({' -> '.join(up_tgt)}) and {source_frame!r} under root "
                f"{up_src[-1]!r} ({' -> '.join(up_src)}); the missing link is a transform connecting "
                f"{up_tgt[-1]!r} and {up_src[-1]!r}")
        return up_src[: up_src.index(common)], up_tgt[: up_tgt.index(common)]

    def span_ns(self, target_frame: str, source_frame: str) -> tuple[int, int] | None:
        """Time span where every moving link between the two frames has data (intersection), or None
        when the path is all static. Raises TfError when the spans of two links do not overlap."""
        up, down = self.chain(target_frame, source_frame)
        links = self._build()
        span: tuple[int, int] | None = None
        names: list[str] = []
        for child in up + down:
            lk = links[child]
            if lk.is_static:
                continue
            a, b = lk.span_ns()
            names.append(f"{lk.parent}->{lk.child} [{_fmt_s(a)}, {_fmt_s(b)}]")
            span = (a, b) if span is None else (max(span[0], a), min(span[1], b))
        if span is not None and span[0] > span[1]:
            raise TfError(f"the moving TF links between {target_frame!r} and {source_frame!r} have no common "
                           f"time: {'; '.join(names)}")
        return span

    # -- lookups -----------------------------------------------------------------------------
    def _sample(self, lk: _Link, stamps_ns: NDArray[np.int64], policy: OutsidePolicy) -> NDArray[np.float64]:
        """[N, 4, 4] T_parent_child of one link at ``stamps_ns``."""
        n = len(stamps_ns)
        if lk.is_static:
            return np.broadcast_to(make_transform(quat_wxyz_to_matrix(lk.q_wxyz[0]), lk.t_m[0]), (n, 4, 4)).copy()
        a, b = lk.span_ns()
        outside = (stamps_ns < a) | (stamps_ns > b)
        if outside.any() and OutsidePolicy(policy) is OutsidePolicy.REFUSE:
            bad = int(stamps_ns[np.argmax(outside)])
            raise TfError(
                f"TF link {lk.parent!r} -> {lk.child!r} has no data at {_fmt_s(bad)} ({int(outside.sum())} of {n} "
                f"requested times are outside): its data spans [{_fmt_s(a)}, {_fmt_s(b)}]; request times inside "
                "that span or clamp to the nearest sample (--outside clamp)")
        st = np.clip(stamps_ns, a, b)
        hi = np.clip(np.searchsorted(lk.stamps_ns, st, side="left"), 1, max(1, len(lk.stamps_ns) - 1))
        if len(lk.stamps_ns) == 1:
            w = np.zeros(n)
            i0 = i1 = np.zeros(n, dtype=np.int64)
        else:
            i0, i1 = hi - 1, hi
            dt = (lk.stamps_ns[i1] - lk.stamps_ns[i0]).astype(np.float64)
            w = np.clip((st - lk.stamps_ns[i0]).astype(np.float64) / dt, 0.0, 1.0)
        t = lk.t_m[i0] * (1.0 - w)[:, None] + lk.t_m[i1] * w[:, None]
        q = slerp_wxyz(lk.q_wxyz[i0], lk.q_wxyz[i1], w)
        return make_transform(quat_wxyz_to_matrix(q), t)

    def lookup(
        self,
        target_frame: str,
        source_frame: str,
        stamps_ns: NDArray[np.integer] | list[int] | int,
        policy: OutsidePolicy | str = OutsidePolicy.REFUSE,
    ) -> NDArray[np.float64]:
        """``T_target_source`` at each stamp: maps points in ``source_frame`` into ``target_frame``
        (tf2 ``lookupTransform(target, source, t)``; e.g. target=odom, source=camera gives the camera pose).

        Args:
            target_frame, source_frame: frame ids.
            stamps_ns: [N] query times in nanoseconds (or one int).
            policy: what to do at times outside a moving link's data.
        Returns:
            [N, 4, 4] float64 rigid transforms.
        Raises:
            TfError: unknown frame, unconnected trees, or (REFUSE) a time outside the data.
        """
        st = np.atleast_1d(np.asarray(stamps_ns, dtype=np.int64))
        policy = OutsidePolicy(policy)
        up, down = self.chain(target_frame, source_frame)
        links = self._build()
        n = len(st)
        T_common_source = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
        for child in reversed(up):  # compose from the common ancestor down to the source
            T_common_source = T_common_source @ self._sample(links[child], st, policy)
        T_common_target = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
        for child in reversed(down):
            T_common_target = T_common_target @ self._sample(links[child], st, policy)
        R = np.swapaxes(T_common_target[:, :3, :3], -1, -2)
        T_target_common = make_transform(R, -np.einsum("nij,nj->ni", R, T_common_target[:, :3, 3]))
        return T_target_common @ T_common_source
