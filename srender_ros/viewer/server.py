"""WorldViewer: a local web page (viser) showing a world's splats, keyframes, paths and live cameras.

One object per server; every ``show_*`` / ``update_*`` method may be called again (from any
thread) to replace what it drew, so the CLI uses it once and the ROS node keeps it current.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.manifest import KeyframeRecord, WorldSnapshot
from srender_ros.errors import BackendUnavailableError, InputError
from srender_ros.viewer.scene import (
    DEFAULT_MAX_SPLATS,
    MAX_SPLATS_LIMIT,
    camera_pose,
    coverage_colours,
    frustum_fov_aspect,
    path_segments,
    scene_bounds,
    splats_for_browser,
    subsample_path,
    thumbnail,
)

log = logging.getLogger(__name__)

#: Keyframes listed as buttons in the side panel; beyond it the list says how many more there are
#: (all keyframes still get a frustum, up to ``max_frusta``).
MAX_LISTED_KEYFRAMES = 200
KEYFRAME_COLOUR = (40, 90, 230)
LIVE_COLOUR = (230, 120, 0)
BELOW_COLOUR = (220, 0, 0)
#: The live cameras' positions in the side panel are rewritten at most this often, seconds.
LIVE_TEXT_PERIOD_S = 0.5


class PortInUseError(InputError):
    """The viewer's port is taken by another program."""


@dataclass(frozen=True)
class ViewerConfig:
    """Settings of one viewer server.

    Attributes:
        host: interface to bind; 127.0.0.1 keeps the world on this machine (0.0.0.0 shares it on the network).
        port: TCP port of the page and its WebSocket (0 = any free port).
        max_splats: at most this many Gaussians go to the browser (a seeded uniform subset beyond).
        thumbnail_px: long side of the keyframe images drawn in the frusta, pixels.
        max_frusta: keyframe frusta drawn at most (evenly chosen beyond).
        max_path_poses: poses of a trajectory drawn (and probed for coverage) at most.
        frustum_scale_m: frustum depth, metres (0: a fortieth of the world's size, within 0.1 .. 0.6).
        up: world axis pointing up.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    max_splats: int = DEFAULT_MAX_SPLATS
    thumbnail_px: int = 160
    max_frusta: int = 500
    max_path_poses: int = 2000
    frustum_scale_m: float = 0.0
    up: str = "+z"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InputError(f"port {self.port}: must be in 0..65535")
        if not 1 <= self.max_splats <= MAX_SPLATS_LIMIT:
            raise InputError(f"max_splats {self.max_splats}: must be in 1..{MAX_SPLATS_LIMIT} (one browser message)")
        if self.thumbnail_px < 8 or self.max_frusta < 1 or self.max_path_poses < 2:
            raise InputError("thumbnail_px >= 8, max_frusta >= 1 and max_path_poses >= 2 are required")
        if self.up not in ("+x", "+y", "+z", "-x", "-y", "-z"):
            raise InputError(f"up {self.up!r}: expected one of +x +y +z -x -y -z")


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUseError when ``host:port`` cannot be bound (viser itself would silently take the next port)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InputError(f"--host {host!r}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            s.bind(addr)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                why = "is in use by another program" if exc.errno == errno.EADDRINUSE else "needs privileges"
                raise PortInUseError(f"port {port} on {host} {why}; choose another with --port "
                                     f"(e.g. --port {port + 1 if port < 65535 else 8081})") from None
            raise InputError(f"cannot bind {host}:{port}: {exc.strerror}") from None


class WorldViewer:
    """A viser server showing one world. Start it by constructing; stop it with :meth:`close` (or ``with``).

    Raises:
        PortInUseError: the port is taken. BackendUnavailableError: viser is not installed.
    """

    def __init__(self, config: ViewerConfig | None = None) -> None:
        self.config = config or ViewerConfig()
        try:
            import viser
        except ImportError as exc:
            raise BackendUnavailableError(f"the world viewer needs the Python package viser "
                                          f"(pip install viser==1.1.1): {exc}") from None
        check_port_free(self.config.host, self.config.port)
        logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per browser request otherwise
        with contextlib.redirect_stdout(io.StringIO()):  # viser prints its own banner; callers print the URL
            self._server = viser.ViserServer(host=self.config.host, port=self.config.port, verbose=False)
        if self.config.port and self._server.get_port() != self.config.port:  # lost a race for the port
            self._server.stop()
            raise PortInUseError(f"port {self.config.port} on {self.config.host} is in use by another program; "
                                 "choose another with --port")
        self._lock = threading.RLock()
        self._closed = False
        self._world: list[Any] = []  # handles drawn for the world (splats, frusta, panel)
        self._splats: Any = None
        self._paths: dict[str, list[Any]] = {}
        self._live: dict[str, Any] = {}
        self._keyframes: tuple[KeyframeRecord, ...] = ()
        self._frustum_scale = 0.2
        self._server.scene.set_up_direction(self.config.up)  # type: ignore[arg-type]
        self._server.gui.configure_theme(show_share_button=False, control_width="medium")
        self._summary = self._server.gui.add_markdown("**srender world viewer**: no world loaded")
        self._folder = self._server.gui.add_folder("Keyframes")
        self._selected = self._server.gui.add_markdown("Click a keyframe frustum or button to see its image.")
        self._image = self._server.gui.add_image(np.zeros((8, 8, 3), np.uint8), label="keyframe", visible=False)
        self._path_info = self._server.gui.add_markdown("")
        self._live_info = self._server.gui.add_markdown("")
        self._live_text_s = 0.0
        self._live_pos: dict[str, NDArray[np.float64]] = {}
        self._show_splats: Any = self._server.gui.add_checkbox("show splats", initial_value=True)
        self._show_splats.on_update(lambda _event: self.set_splats_visible(bool(self._show_splats.value)))
        self.shown_splats = 0

    # ---- properties -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._server.get_port())

    @property
    def url(self) -> str:
        """Address to open in a browser."""
        host = self.config.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
        return f"http://{shown}:{self.port}/"

    # ---- world ----------------------------------------------------------------------------------
    def show_world(self, snap: WorldSnapshot) -> None:
        """Draw (or replace) the world: its Gaussians as splats, keyframe frusta with images, the panel."""
        splats = splats_for_browser(snap.world, self.config.max_splats)
        kf_T = np.stack([k.T_world_cam for k in snap.keyframes]) if snap.keyframes else None
        centre, radius = scene_bounds(snap.world, kf_T)
        # Frusta sized for the place, not the horizon: a street world spans 100 m, its cameras move 1 m apart.
        scale = self.config.frustum_scale_m or float(np.clip(radius / 40.0, 0.1, 0.6))
        scene = self._server.scene
        with self._lock:
            self._clear(self._world)
            self._keyframes = snap.keyframes
            self._frustum_scale = scale
            self._splats = None
            if splats.shown:
                self._splats = scene.add_gaussian_splats("/world/splats", splats.centers, splats.covariances,
                                                         splats.rgbs, splats.opacities,
                                                         visible=bool(self._show_splats.value))
                self._world.append(self._splats)
            shown_kf = subsample_path(len(snap.keyframes), self.config.max_frusta)
            for i in shown_kf.tolist():
                self._world.append(self._keyframe_frustum(i, snap.keyframes[i], scale))
            self.shown_splats = splats.shown
            subsampled = f" (showing a uniform subset of {splats.shown:,})" if splats.shown < splats.total else ""
            self._summary.content = (f"**World** `{snap.world_id}`  \n*{snap.prompt}*  \n"
                                     f"{splats.total:,} Gaussians{subsampled}  \n"
                                     f"**{len(snap.keyframes)} keyframes**")
            self._folder.label = f"Keyframes ({len(snap.keyframes)})"
            with self._folder:
                listed = min(len(snap.keyframes), MAX_LISTED_KEYFRAMES)
                for i in range(listed):
                    self._world.append(self._keyframe_button(i, snap.keyframes[i]))
                if len(snap.keyframes) > listed:
                    self._world.append(self._server.gui.add_markdown(
                        f"... and {len(snap.keyframes) - listed} more (click their frusta)"))
            self._server.initial_camera.look_at = centre
            self._server.initial_camera.position = self._overview_eye(snap, centre, radius)

    def look_from(self, position: NDArray[np.floating], look_at: NDArray[np.floating]) -> None:
        """Move every connected browser's camera (metres, world frame); new browsers start there too."""
        with self._lock:
            self._server.initial_camera.position = np.asarray(position, dtype=np.float64)
            self._server.initial_camera.look_at = np.asarray(look_at, dtype=np.float64)
            for client in self._server.get_clients().values():
                with client.atomic():
                    client.camera.position = np.asarray(position, dtype=np.float64)
                    client.camera.look_at = np.asarray(look_at, dtype=np.float64)

    def set_splats_visible(self, visible: bool) -> None:
        """Show or hide the world's splats (frusta and paths stay)."""
        with self._lock:
            if self._show_splats.value != visible:
                self._show_splats.value = visible
            if self._splats is not None:
                self._splats.visible = visible

    def _overview_eye(self, snap: WorldSnapshot, centre: NDArray[np.float64], radius: float) -> NDArray[np.float64]:
        """A start position: a little behind and above the first keyframe (inside an indoor world, not above
        its ceiling), or outside the bounds looking at the centre when there are no keyframes."""
        up = np.zeros(3)
        up["xyz".index(self.config.up[1])] = 1.0 if self.config.up[0] == "+" else -1.0
        if not snap.keyframes:
            return np.asarray(centre + radius * (0.9 * np.array([1.0, 1.0, 0.0]) + 0.9 * up), dtype=np.float64)
        T = snap.keyframes[0].T_world_cam
        fwd = T[:3, 2] - up * float(T[:3, 2] @ up)
        back = -fwd / max(float(np.linalg.norm(fwd)), 1e-9)
        return np.asarray(T[:3, 3] + radius * (0.35 * back + 0.15 * up), dtype=np.float64)

    def _keyframe_frustum(self, i: int, kf: KeyframeRecord, scale: float) -> Any:
        fov, aspect = frustum_fov_aspect(kf.intrinsics)
        pose = camera_pose(kf.T_world_cam)
        h = self._server.scene.add_camera_frustum(
            f"/world/keyframes/kf_{i:04d}", fov=fov, aspect=aspect, scale=scale, color=KEYFRAME_COLOUR,
            thickness=scale * 0.04, image=thumbnail(kf.rgb, self.config.thumbnail_px), format="jpeg",
            wxyz=pose.wxyz, position=pose.position)

        def clicked(_event: Any, i: int = i) -> None:
            self.select_keyframe(i)

        h.on_click(clicked)
        return h

    def _keyframe_button(self, i: int, kf: KeyframeRecord) -> Any:
        label = f"keyframe {i}" + (f" (pose {kf.pose_index})" if kf.pose_index >= 0 else "")
        b = self._server.gui.add_button(label, hint=kf.reason or None)

        def clicked(event: Any, i: int = i) -> None:
            self.select_keyframe(i)
            client = getattr(event, "client", None)
            if client is not None:  # fly that browser's camera to the keyframe's pose
                T = self._keyframes[i].T_world_cam
                with client.atomic():
                    client.camera.position = T[:3, 3] - T[:3, 2] * 0.5 * self._frustum_scale
                    client.camera.look_at = T[:3, 3] + T[:3, 2]

        b.on_click(clicked)
        return b

    def select_keyframe(self, i: int) -> None:
        """Show keyframe ``i``'s image and details in the side panel."""
        with self._lock:
            if not 0 <= i < len(self._keyframes):
                return
            kf = self._keyframes[i]
            self._image.image = thumbnail(kf.rgb, 640)
            self._image.label = f"keyframe {i}"
            self._image.visible = True
            p = kf.T_world_cam[:3, 3]
            self._selected.content = (f"**keyframe {i}**" + (f", pose {kf.pose_index}" if kf.pose_index >= 0 else "")
                                      + f"  \n{kf.intrinsics.width_px}x{kf.intrinsics.height_px}, "
                                        f"hfov {kf.intrinsics.hfov_deg:.1f} deg  \n"
                                        f"at ({p[0]:.2f}, {p[1]:.2f}, {p[2]:.2f}) m  \n{kf.reason}")

    # ---- trajectories -----------------------------------------------------------------------------
    def show_trajectory(self, name: str, T_world_cam: NDArray[np.floating], covered: NDArray[np.floating] | None = None,
                        threshold: float | None = None) -> None:
        """Draw (or replace) a camera path, coloured by covered fraction when given.

        Args:
            name: label of the path (one drawing per name).
            T_world_cam: [B, 4, 4] optical poses.
            covered: [B] covered fraction of each pose's view in [0, 1] (None: drawn grey).
            threshold: poses whose covered fraction is below ``1 - threshold`` are marked red
                (those the coverage scheduler would make a keyframe for).
        """
        T = np.asarray(T_world_cam, dtype=np.float64).reshape(-1, 4, 4)
        idx = subsample_path(len(T), self.config.max_path_poses)
        cov = None if covered is None else np.asarray(covered, dtype=np.float64).reshape(-1)
        if cov is not None and len(cov) != len(T):
            raise InputError(f"show_trajectory: {len(T)} poses but {len(cov)} coverage values")
        colours = coverage_colours(cov[idx]) if cov is not None else np.full((len(idx), 3), 90, np.uint8)
        key = "".join(ch if ch.isalnum() else "_" for ch in name) or "path"
        pts, cols = path_segments(T[idx, :3, 3], colours)
        scene = self._server.scene
        with self._lock:
            self._clear(self._paths.pop(name, []))
            handles: list[Any] = []
            if len(pts):
                handles.append(scene.add_line_segments(f"/paths/{key}/line", pts, cols, thickness=4.0,
                                                       thickness_units="screen"))
            handles.append(scene.add_point_cloud(f"/paths/{key}/poses", T[idx, :3, 3].astype(np.float32), colours,
                                                 point_size=self._frustum_scale * 0.12, point_shape="circle"))
            text = f"**{name}**: {len(T)} poses"
            if cov is not None:
                below = np.flatnonzero(cov < 1.0 - threshold) if threshold is not None else np.zeros(0, np.int64)
                if len(below):
                    marks = below[subsample_path(len(below), self.config.max_frusta)]
                    handles.append(scene.add_point_cloud(f"/paths/{key}/below", T[marks, :3, 3].astype(np.float32),
                                                         BELOW_COLOUR, point_size=self._frustum_scale * 0.3,
                                                         point_shape="diamond"))
                text += (f", covered fraction mean {np.nanmean(cov):.3f} (min {np.nanmin(cov):.3f}); "
                         f"colour red 0 - yellow 0.5 - green 1")
                if threshold is not None:
                    text += f"; {len(below)} poses below {1.0 - threshold:.2f} (red diamonds)"
            self._paths[name] = handles
            self._path_info.content = "  \n".join(filter(None, [self._path_info.content, text]))

    # ---- live cameras -------------------------------------------------------------------------------
    def update_camera(self, name: str, T_world_cam: NDArray[np.floating], intrinsics: Intrinsics | None = None) -> None:
        """Move (or create) the live frustum ``name`` to an optical [4, 4] pose (cheap; call at any rate)."""
        pose = camera_pose(T_world_cam)
        with self._lock:
            if self._closed:
                return
            h = self._live.get(name)
            if h is None:
                fov, aspect = frustum_fov_aspect(intrinsics) if intrinsics is not None else (np.pi / 2, 4 / 3)
                key = "".join(ch if ch.isalnum() else "_" for ch in name) or "camera"
                h = self._server.scene.add_camera_frustum(f"/live/{key}", fov=fov, aspect=aspect,
                                                          scale=self._frustum_scale * 1.5, color=LIVE_COLOUR,
                                                          thickness=self._frustum_scale * 0.06)
                self._server.scene.add_label(f"/live/{key}/label", name)
                self._live[name] = h
            h.wxyz = pose.wxyz
            h.position = pose.position
            new = name not in self._live_pos
            self._live_pos[name] = pose.position
            now = time.monotonic()
            if new or now - self._live_text_s > LIVE_TEXT_PERIOD_S:  # the panel text at a few Hz, not per pose
                self._live_text_s = now
                self._live_info.content = "**Live cameras**  \n" + "  \n".join(
                    f"{n}: ({p[0]:.2f}, {p[1]:.2f}, {p[2]:.2f}) m" for n, p in sorted(self._live_pos.items()))

    # ---- life cycle ------------------------------------------------------------------------------------
    def _clear(self, handles: list[Any]) -> None:
        for h in handles:
            try:
                h.remove()
            except Exception as exc:  # a handle removed twice is harmless
                log.debug("viewer: removing %r: %s", h, exc)
        handles.clear()

    def close(self) -> None:
        """Stop the server (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.stop()

    def __enter__(self) -> WorldViewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
