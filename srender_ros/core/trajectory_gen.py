"""Built-in camera paths: orbit, walk, pan, figure_eight, random_smooth, drone, car, drive, handheld.

Every generator builds the path in a z-up world (ground plane z = 0, heights in metres above it),
with the camera looking roughly horizontally along the motion (or at the orbit centre) and never
upside down, then expresses it in the requested ``world_up`` convention. Poses are optical
(x right, y down, z forward) and stamped ``start_ns + round(i * 1e9 / fps)`` for
``i < max(1, round(duration_s * fps))``. Random generators are deterministic given ``seed``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.geometry import R_BODY_OPTICAL, make_transform
from srender_ros.core.resample import rotation_zup_from_world
from srender_ros.core.trajectory import Trajectory
from srender_ros.errors import TrajectoryError

F64 = NDArray[np.float64]
_G_MPS2 = 9.81


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------


def _positive(**values: float) -> None:
    for name, v in values.items():
        if not np.isfinite(v) or v <= 0:
            raise TrajectoryError(f"{name}: {v!r} must be a positive number")


def _non_negative(**values: float) -> None:
    for name, v in values.items():
        if not np.isfinite(v) or v < 0:
            raise TrajectoryError(f"{name}: {v!r} must be a finite number >= 0")


def _time_s(fps: float, duration_s: float, start_ns: int) -> tuple[NDArray[np.int64], F64]:
    """(stamps_ns [N], t_s [N] seconds since the first pose)."""
    _positive(fps=fps, duration_s=duration_s)
    if start_ns < 0:
        raise TrajectoryError(f"start_ns: {start_ns} must be >= 0")
    n = max(1, round(duration_s * fps))
    offsets_ns = np.round(np.arange(n) * (1e9 / fps)).astype(np.int64)
    return int(start_ns) + offsets_ns, offsets_ns.astype(np.float64) * 1e-9


def _smooth_noise(rng: np.random.Generator, t_s: F64, f_min_hz: float, f_max_hz: float, n: int = 5) -> F64:
    """[N] smooth band-limited noise in [-1, 1]: a sum of sinusoids with random frequencies and phases.

    Sinusoids (not filtered white noise) keep every generator smooth at any fps, so resampling and
    finite differences behave, and the same seed gives the same path at any frame rate.
    """
    f = rng.uniform(f_min_hz, f_max_hz, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    a = rng.uniform(0.5, 1.0, n)
    a /= a.sum()
    return np.sin(2 * np.pi * f[None, :] * t_s[:, None] + phase[None, :]) @ a


def _integrate(v: F64, t_s: F64) -> F64:
    """Cumulative trapezoid integral of [N, ...] samples over t_s, starting at 0."""
    out = np.zeros_like(v)
    if len(t_s) > 1:
        dt = np.diff(t_s).reshape((-1,) + (1,) * (v.ndim - 1))
        out[1:] = np.cumsum(0.5 * (v[1:] + v[:-1]) * dt, axis=0)
    return out


def rotations_from_ypr(yaw_rad: F64, pitch_rad: F64, roll_rad: F64) -> F64:
    """Optical camera rotations in a z-up world from heading angles.

    Args:
        yaw_rad: [N] heading, counter-clockwise from +x about +z.
        pitch_rad: [N] look-up angle (positive looks up).
        roll_rad: [N] bank, positive = right side down (a right turn's bank).
    Returns:
        [N, 3, 3] R_world_optical.
    """
    cy, sy = np.cos(yaw_rad), np.sin(yaw_rad)
    # REP 103 body rotation about y by -pitch: positive pitch lifts the x (forward) axis.
    cp, sp = np.cos(-pitch_rad), np.sin(-pitch_rad)
    cr, sr = np.cos(roll_rad), np.sin(roll_rad)
    n = len(yaw_rad)
    Rz = np.zeros((n, 3, 3))
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1], Rz[:, 2, 2] = cy, -sy, sy, cy, 1.0
    Ry = np.zeros((n, 3, 3))
    Ry[:, 0, 0], Ry[:, 0, 2], Ry[:, 2, 0], Ry[:, 2, 2], Ry[:, 1, 1] = cp, sp, -sp, cp, 1.0
    Rx = np.zeros((n, 3, 3))
    Rx[:, 1, 1], Rx[:, 1, 2], Rx[:, 2, 1], Rx[:, 2, 2], Rx[:, 0, 0] = cr, -sr, sr, cr, 1.0
    return Rz @ Ry @ Rx @ R_BODY_OPTICAL


def _look_at(positions_m: F64, targets_m: F64) -> F64:
    """[N, 3, 3] optical rotations looking from positions to targets, z-up world, no roll."""
    d = targets_m - positions_m
    yaw = np.arctan2(d[:, 1], d[:, 0])
    pitch = np.arctan2(d[:, 2], np.linalg.norm(d[:, :2], axis=1))
    return rotations_from_ypr(yaw, pitch, np.zeros(len(d)))


def _heading(velocity: F64) -> F64:
    return np.arctan2(velocity[:, 1], velocity[:, 0])


def _finish(stamps_ns: NDArray[np.int64], positions_m: F64, R_zup_cam: F64, world_up: str, frame_id: str) -> Trajectory:
    R_zup_world = rotation_zup_from_world(world_up)
    T = make_transform(R_zup_world.T @ R_zup_cam, positions_m @ R_zup_world)  # p_world = R_zup_world.T @ p_zup
    return Trajectory(stamps_ns, T, frame_id)


# ---------------------------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------------------------


def orbit(*, fps: float = 30.0, duration_s: float = 20.0, radius_m: float = 3.0, height_m: float = 1.5,
          target_height_m: float = 1.0, center_xy_m: tuple[float, float] = (0.0, 0.0), revolutions: float = 1.0,
          start_angle_deg: float = 0.0, start_ns: int = 0, world_up: str = "+z", frame_id: str = "world") -> Trajectory:
    """Circle the point (center_xy_m, target_height_m) at radius_m, height_m, always looking at it.

    ``revolutions`` > 0 turns counter-clockwise seen from above, < 0 clockwise.
    """
    _positive(radius_m=radius_m)
    stamps, t = _time_s(fps, duration_s, start_ns)
    theta = np.radians(start_angle_deg) + 2 * np.pi * revolutions * t / duration_s
    c = np.array([center_xy_m[0], center_xy_m[1], target_height_m], dtype=np.float64)
    p = np.stack([c[0] + radius_m * np.cos(theta), c[1] + radius_m * np.sin(theta), np.full_like(t, height_m)], -1)
    return _finish(stamps, p, _look_at(p, np.broadcast_to(c, p.shape)), world_up, frame_id)


def walk(*, fps: float = 30.0, duration_s: float = 20.0, seed: int = 0, speed_mps: float = 1.2, height_m: float = 1.6,
         meander_deg: float = 30.0, head_turn_deg: float = 15.0, sway_m: float = 0.03, bob_m: float = 0.02,
         step_hz: float = 1.8, start_ns: int = 0, world_up: str = "+z", frame_id: str = "world") -> Trajectory:
    """Walk-through: forward at speed_mps along a gently meandering line, with body sway, head bob and head turns."""
    _positive(speed_mps=speed_mps, step_hz=step_hz)
    _non_negative(meander_deg=meander_deg, head_turn_deg=head_turn_deg, sway_m=sway_m, bob_m=bob_m)
    stamps, t = _time_s(fps, duration_s, start_ns)
    rng = np.random.default_rng(seed)
    heading = np.radians(meander_deg) * _smooth_noise(rng, t, 0.01, 0.05)
    v = speed_mps * np.stack([np.cos(heading), np.sin(heading), np.zeros_like(t)], -1)
    p = _integrate(v, t)
    left = np.stack([-np.sin(heading), np.cos(heading), np.zeros_like(t)], -1)
    # Sway at half the step rate (one period per left-right step pair), bob once per step.
    p += left * (sway_m * np.sin(np.pi * step_hz * t))[:, None]
    p[:, 2] = height_m + bob_m * np.cos(2 * np.pi * step_hz * t)
    yaw = heading + np.radians(head_turn_deg) * _smooth_noise(rng, t, 0.05, 0.2)
    pitch = np.radians(-3.0 + 3.0 * _smooth_noise(rng, t, 0.05, 0.3))
    roll = np.radians(1.0) * np.sin(np.pi * step_hz * t)
    return _finish(stamps, p, rotations_from_ypr(yaw, pitch, roll), world_up, frame_id)


def pan(*, fps: float = 30.0, duration_s: float = 20.0, sweep_deg: float = 360.0, height_m: float = 1.5,
        position_xy_m: tuple[float, float] = (0.0, 0.0), pitch_deg: float = 0.0, start_yaw_deg: float = 0.0,
        start_ns: int = 0, world_up: str = "+z", frame_id: str = "world") -> Trajectory:
    """Rotation in place: yaw sweeps sweep_deg (negative: clockwise) at constant rate, camera fixed at one point."""
    if not np.isfinite(sweep_deg):
        raise TrajectoryError(f"sweep_deg: {sweep_deg!r} must be finite")
    if not -80.0 <= pitch_deg <= 80.0:
        raise TrajectoryError(f"pitch_deg: {pitch_deg!r} must be within [-80, 80] degrees")
    stamps, t = _time_s(fps, duration_s, start_ns)
    yaw = np.radians(start_yaw_deg + sweep_deg * t / duration_s)
    p = np.zeros((len(t), 3))
    p[:, 0], p[:, 1], p[:, 2] = position_xy_m[0], position_xy_m[1], height_m
    return _finish(stamps, p, rotations_from_ypr(yaw, np.full_like(t, np.radians(pitch_deg)), np.zeros_like(t)),
                   world_up, frame_id)


def figure_eight(*, fps: float = 30.0, duration_s: float = 20.0, radius_m: float = 3.0, height_m: float = 1.5,
                 laps: float = 1.0, start_ns: int = 0, world_up: str = "+z", frame_id: str = "world") -> Trajectory:
    """A figure eight (x = r sin a, y = r sin a cos a) of half-width radius_m, looking along the motion."""
    _positive(radius_m=radius_m, laps=laps)
    stamps, t = _time_s(fps, duration_s, start_ns)
    a = 2 * np.pi * laps * t / duration_s
    p = np.stack([radius_m * np.sin(a), radius_m * np.sin(a) * np.cos(a), np.full_like(t, height_m)], -1)
    # Analytic tangent (never zero: when cos a = 0, cos 2a = -1).
    yaw = np.arctan2(np.cos(2 * a), np.cos(a))
    return _finish(stamps, p, rotations_from_ypr(yaw, np.zeros_like(t), np.zeros_like(t)), world_up, frame_id)


def _catmull_rom(points: F64, samples_per_segment: int) -> F64:
    """Dense [M, D] samples of a uniform Catmull-Rom spline through [K, D] points (K >= 2)."""
    P = np.concatenate([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    u = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(P) - 2):
        p0, p1, p2, p3 = P[i - 1], P[i], P[i + 1], P[i + 2]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * u**3))
    out.append(points[-1:])
    return np.concatenate(out)


def _along_polyline(dense: F64, dist_m: F64) -> F64:
    """Points at arc lengths dist_m along a dense [M, D] polyline (constant speed reparametrization)."""
    seg = np.linalg.norm(np.diff(dense, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    return np.stack([np.interp(dist_m, s, dense[:, k]) for k in range(dense.shape[1])], -1)


def random_smooth(*, fps: float = 30.0, duration_s: float = 20.0, seed: int = 0, speed_mps: float = 1.0,
                  height_m: float = 1.5, height_var_m: float = 0.3, segment_m: float = 3.0, max_turn_deg: float = 60.0,
                  look_var_deg: float = 10.0, start_ns: int = 0, world_up: str = "+z", frame_id: str = "world") -> Trajectory:
    """A smooth random path: a spline through random waypoints (segment_m apart, heading changing by at most
    max_turn_deg per waypoint) at constant speed, looking along it with a little smooth look-around."""
    _positive(speed_mps=speed_mps, segment_m=segment_m)
    _non_negative(height_var_m=height_var_m, max_turn_deg=max_turn_deg, look_var_deg=look_var_deg)
    stamps, t = _time_s(fps, duration_s, start_ns)
    rng = np.random.default_rng(seed)
    length_m = speed_mps * t[-1]
    # A spline is shorter than its control polygon; 1.5x + 4 waypoints always covers the path length.
    k = int(np.ceil(1.5 * length_m / segment_m)) + 4
    heading = rng.uniform(-np.pi, np.pi) + np.cumsum(np.radians(rng.uniform(-max_turn_deg, max_turn_deg, k)))
    way = np.concatenate([[[0.0, 0.0]], segment_m * np.cumsum(np.stack([np.cos(heading), np.sin(heading)], -1), 0)])
    dense = _catmull_rom(way, 64)
    xy = _along_polyline(dense, speed_mps * t)
    ahead = _along_polyline(dense, speed_mps * t + 0.25)  # tangent from a point 25 cm ahead: defined even at rest
    p = np.concatenate([xy, (height_m + height_var_m * _smooth_noise(rng, t, 0.02, 0.1))[:, None]], -1)
    yaw = _heading(ahead - xy) + np.radians(look_var_deg) * _smooth_noise(rng, t, 0.03, 0.15)
    pitch = np.radians(look_var_deg / 2) * _smooth_noise(rng, t, 0.03, 0.15)
    return _finish(stamps, p, rotations_from_ypr(yaw, pitch, np.zeros_like(t)), world_up, frame_id)


def drone(*, fps: float = 30.0, duration_s: float = 20.0, seed: int = 0, speed_mps: float = 8.0,
          altitude_m: float = 20.0, altitude_var_m: float = 3.0, max_turn_rate_dps: float = 12.0,
          max_bank_deg: float = 25.0, camera_pitch_deg: float = -10.0, start_ns: int = 0, world_up: str = "+z",
          frame_id: str = "world") -> Trajectory:
    """Fly-through at altitude: smooth random turns with a coordinated bank (tan bank = v * yaw rate / g)."""
    _positive(speed_mps=speed_mps, altitude_m=altitude_m)
    _non_negative(altitude_var_m=altitude_var_m, max_turn_rate_dps=max_turn_rate_dps, max_bank_deg=max_bank_deg)
    if not -60.0 <= camera_pitch_deg <= 30.0:
        raise TrajectoryError(f"camera_pitch_deg: {camera_pitch_deg!r} must be within [-60, 30] degrees")
    stamps, t = _time_s(fps, duration_s, start_ns)
    rng = np.random.default_rng(seed)
    yaw_rate = np.radians(max_turn_rate_dps) * _smooth_noise(rng, t, 0.02, 0.08)
    heading = rng.uniform(-np.pi, np.pi) + _integrate(yaw_rate, t)
    v = speed_mps * np.stack([np.cos(heading), np.sin(heading), np.zeros_like(t)], -1)
    p = _integrate(v, t)
    p[:, 2] = altitude_m + altitude_var_m * _smooth_noise(rng, t, 0.01, 0.05)
    bank = np.clip(np.arctan(speed_mps * yaw_rate / _G_MPS2), -np.radians(max_bank_deg), np.radians(max_bank_deg))
    # Turning left (yaw_rate > 0) banks left: right side up, i.e. negative roll.
    return _finish(stamps, p, rotations_from_ypr(heading, np.full_like(t, np.radians(camera_pitch_deg)), -bank),
                   world_up, frame_id)


def car(*, fps: float = 30.0, duration_s: float = 20.0, seed: int = 0, speed_mps: float = 12.0, height_m: float = 1.4,
        max_curvature_per_m: float = 1.0 / 80.0, vibration_deg: float = 0.3, start_ns: int = 0, world_up: str = "+z",
        frame_id: str = "world") -> Trajectory:
    """Drive along a gently curving road (curvature varies smoothly with distance), camera at the windscreen.

    At the defaults 42 s covers about 500 m.
    """
    _positive(speed_mps=speed_mps, height_m=height_m)
    _non_negative(max_curvature_per_m=max_curvature_per_m, vibration_deg=vibration_deg)
    stamps, t = _time_s(fps, duration_s, start_ns)
    rng = np.random.default_rng(seed)
    dist = speed_mps * t
    # Curvature as a function of distance (bends every ~100-300 m), so speed does not change the road's shape.
    curvature = max_curvature_per_m * _smooth_noise(rng, dist, 1 / 300.0, 1 / 100.0)
    heading = _integrate(curvature * speed_mps, t)
    v = speed_mps * np.stack([np.cos(heading), np.sin(heading), np.zeros_like(t)], -1)
    p = _integrate(v, t)
    p[:, 2] = height_m
    vib = np.radians(vibration_deg)
    pitch = vib * _smooth_noise(rng, t, 1.0, 3.0)
    roll = vib * _smooth_noise(rng, t, 1.0, 3.0)
    return _finish(stamps, p, rotations_from_ypr(heading, pitch, roll), world_up, frame_id)


def drive(*, fps: float = 10.0, duration_s: float = 60.0, seed: int = 0, speed_mps: float = 10.0, height_m: float = 1.6,
          lane_offset_m: float = -2.0, weave_m: float = 0.6, weave_hz: tuple[float, float] = (0.03, 0.1),
          pitch_deg: float = 0.0, vibration_deg: float = 0.2, start_ns: int = 0, world_up: str = "+z",
          frame_id: str = "world") -> Trajectory:
    """A car driving down a straight street (+x) in its lane, with slight steering; forward camera.

    The road runs along y = 0 (the procedural street family's road centre lines are every 40 m
    along x and y, crossings at the origin), the car keeps to the lane at ``lane_offset_m``
    (negative: the right-hand lane when driving +x) and weaves within it by up to ``weave_m``
    (smooth, ``weave_hz`` band: slight steering), at a constant ``speed_mps`` along x. The camera
    is ``height_m`` above the road (z = 0), looks along the direction of travel, ``pitch_deg``
    (negative: down) with small vibrations. Defaults: 10 fps, 60 s, 10 m/s: 600 poses over 600 m.
    """
    _positive(speed_mps=speed_mps, height_m=height_m)
    _non_negative(weave_m=weave_m, vibration_deg=vibration_deg)
    f_lo, f_hi = float(weave_hz[0]), float(weave_hz[1])
    _positive(weave_hz_min=f_lo, weave_hz_max=f_hi)
    if f_hi < f_lo:
        raise TrajectoryError(f"weave_hz: {weave_hz!r} must be (min, max) with min <= max")
    if not -30.0 <= pitch_deg <= 30.0:
        raise TrajectoryError(f"pitch_deg: {pitch_deg!r} must be within [-30, 30] degrees")
    stamps, t = _time_s(fps, duration_s, start_ns)
    rng = np.random.default_rng(seed)
    # Lateral offset as a smooth function of time; its analytic slope gives the heading.
    f = rng.uniform(f_lo, f_hi, 3)
    phase = rng.uniform(0.0, 2 * np.pi, 3)
    a = rng.uniform(0.5, 1.0, 3)
    a /= a.sum()
    arg = 2 * np.pi * f[None, :] * t[:, None] + phase[None, :]
    y = lane_offset_m + weave_m * (np.sin(arg) @ a - np.sin(phase) @ a)   # starts on the lane line
    dy_dt = weave_m * (np.cos(arg) @ (a * 2 * np.pi * f))
    x = speed_mps * t
    p = np.stack([x, y, np.full_like(t, height_m)], -1)
    heading = np.arctan2(dy_dt, speed_mps)
    vib = np.radians(vibration_deg)
    pitch = np.radians(pitch_deg) + vib * _smooth_noise(rng, t, 1.0, 3.0)
    roll = vib * _smooth_noise(rng, t, 1.0, 3.0)
    return _finish(stamps, p, rotations_from_ypr(heading, pitch, roll), world_up, frame_id)


def handheld(*, fps: float = 30.0, duration_s: float = 20.0, seed: int = 0, amplitude_m: float = 0.2,
             rotation_deg: float = 8.0, height_m: float = 1.5, look_distance_m: float = 2.0, tremor_m: float = 0.002,
             start_ns: int = 0, world_up: str = "+z", frame_id: str = "world") -> Trajectory:
    """Small shaky hand motion like TUM freiburg1_xyz: translation within +-amplitude_m per axis at
    0.1-0.5 Hz plus a 2-6 Hz tremor, looking at a point look_distance_m ahead (+x), with +-rotation_deg wobble."""
    _positive(look_distance_m=look_distance_m)
    _non_negative(amplitude_m=amplitude_m, rotation_deg=rotation_deg, tremor_m=tremor_m)
    stamps, t = _time_s(fps, duration_s, start_ns)
    rng = np.random.default_rng(seed)
    base = np.array([0.0, 0.0, height_m])
    p = base + np.stack([amplitude_m * _smooth_noise(rng, t, 0.1, 0.5) + tremor_m * _smooth_noise(rng, t, 2.0, 6.0)
                         for _ in range(3)], -1)
    target = base + np.array([look_distance_m, 0.0, 0.0])
    d = target - p
    rot = np.radians(rotation_deg)
    yaw = np.arctan2(d[:, 1], d[:, 0]) + rot * _smooth_noise(rng, t, 0.1, 0.6)
    pitch = np.arctan2(d[:, 2], np.linalg.norm(d[:, :2], axis=1)) + rot * _smooth_noise(rng, t, 0.1, 0.6)
    roll = 0.5 * rot * _smooth_noise(rng, t, 0.1, 0.6)
    return _finish(stamps, p, rotations_from_ypr(yaw, pitch, roll), world_up, frame_id)


#: Generator name -> function (all keyword-only; see each docstring for its scale parameters).
GENERATORS: dict[str, Callable[..., Trajectory]] = {
    "orbit": orbit,
    "walk": walk,
    "pan": pan,
    "figure_eight": figure_eight,
    "random_smooth": random_smooth,
    "drone": drone,
    "car": car,
    "drive": drive,
    "handheld": handheld,
}


def make_trajectory(name: str, fps: float = 30.0, duration_s: float = 20.0, seed: int = 0, **kwargs: Any) -> Trajectory:
    """Build a named built-in trajectory.

    Args:
        name: a key of GENERATORS ('-' accepted for '_', e.g. 'figure-eight').
        fps: poses per second.
        duration_s: length; the path has max(1, round(duration_s * fps)) poses.
        seed: randomness for the random generators (ignored by orbit, pan, figure_eight).
        **kwargs: the generator's own parameters (radius_m, speed_mps, height_m, world_up, ...).
    Returns:
        Optical-convention Trajectory.
    Raises:
        TrajectoryError: unknown name or parameter, or a bad value.
    """
    key = name.strip().lower().replace("-", "_")
    if key not in GENERATORS:
        raise TrajectoryError(f"unknown trajectory generator {name!r}; valid: {', '.join(GENERATORS)}")
    fn = GENERATORS[key]
    params = inspect.signature(fn).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = ", ".join(p for p in params if p not in ("fps", "duration_s", "seed"))
        raise TrajectoryError(f"generator {key!r} has no parameter {', '.join(unknown)}; valid: {valid}")
    args: dict[str, Any] = {"fps": fps, "duration_s": duration_s, **kwargs}
    if "seed" in params:
        args["seed"] = seed
    return fn(**args)
