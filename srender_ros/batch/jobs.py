"""The jobs file of `srender batch`: parsed and checked as a whole before anything runs.

A YAML (or JSON) file holding either a list of jobs or ``{defaults: {...}, jobs: [...]}``. A job
takes the options of `srender render` under their long names with ``_`` for ``-`` (``prompt``,
``trajectory``, ``trajectory_format`` or its short form ``format``, ``width``, ``height``,
``fov_deg``, ``generator``, ``scheduler``, ``seed``, ...), plus:

- ``name``: output folder name (default ``job-000``, ``job-001``, ...), letters, digits, ``._-``;
- ``trajectory``: a file path (relative paths are relative to the jobs file), or a built-in path
  as a mapping ``{builtin: walk, duration_s: 5, fps: 10, ...}`` (srender_ros.core.trajectory_gen);
- ``video: true`` also writes ``video.mp4``; ``ground_truth: true`` writes ``ground_truth/``
  (procedural generator only).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srender_ros.errors import InputError

#: Job keys that are not `srender render` options.
EXTRA_KEYS = {"name": str, "video": bool, "ground_truth": bool}
#: Keys of `srender render` that make no sense in a job (outputs are fixed by the batch layout).
RENDER_ONLY = {"prompt", "trajectory", "out", "frames_dir", "ground_truth_dir", "metrics_json", "no_progress",
               "func", "command", "verbose", "world_dir"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Job:
    """One checked job: its name, prompt, loaded trajectory and `srender render` arguments.

    Attributes:
        name: output folder name. prompt: environment prompt. world_id: the prompt's world id.
        args: an argparse.Namespace exactly as `srender render` would parse these options.
        trajectory: a srender_ros.core.trajectory.Trajectory (optical, world up normalized).
        video, ground_truth: extra outputs.
    """

    name: str
    prompt: str
    world_id: str
    args: argparse.Namespace
    trajectory: Any
    video: bool = False
    ground_truth: bool = False


def _render_parser() -> argparse.ArgumentParser:
    from srender_ros.cli import render_cmd

    top = argparse.ArgumentParser()
    sub = top.add_subparsers()
    render_cmd.register(sub)
    parser: argparse.ArgumentParser = sub.choices["render"]
    return parser


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in RENDER_ONLY and a.dest != "help"}


def _coerce(job: str, key: str, value: Any, action: argparse.Action) -> Any:
    """A YAML value checked against the render option's type and choices."""
    where = f"job {job}: field {key!r}"
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {value!r}")
        return value
    if value is None:
        return None
    kind = action.type or str
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InputError(f"{where}: expected an integer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise InputError(f"{where}: expected a number, got {value!r}")
    if kind is str and not isinstance(value, (str, int, float)):
        raise InputError(f"{where}: expected a string, got {value!r}")
    value = kind(value)  # type: ignore[operator]
    if action.choices is not None and value not in action.choices:
        raise InputError(f"{where}: {value!r} is not one of {list(action.choices)}")
    return value


def _trajectory(job: str, spec: Any, args: argparse.Namespace, base_dir: Path) -> Any:
    from srender_ros.core.resample import normalize_world_up, resample
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.core.trajectory_io import load_trajectory

    where = f"job {job}: field 'trajectory'"
    try:
        if isinstance(spec, dict):
            kwargs = dict(spec)
            name = kwargs.pop("builtin", None)
            if not isinstance(name, str):
                raise InputError(f"{where}: a mapping needs 'builtin: NAME' (e.g. walk, orbit, pan)")
            traj = make_trajectory(name, **kwargs)
        elif isinstance(spec, str) and spec.strip():
            path = Path(spec).expanduser()
            path = path if path.is_absolute() else base_dir / path
            if not path.is_file():
                raise InputError(f"{where}: no such file {path}")
            traj = load_trajectory(path, fmt=args.trajectory_format, pose_frame=args.pose_frame, fps=args.fps)
            if args.fps is not None and len(traj) > 1:
                rate_hz = (len(traj) - 1) / traj.duration_s
                if abs(rate_hz - args.fps) > 0.01 * args.fps:
                    traj = resample(traj, rate_hz=args.fps)
        else:
            raise InputError(f"{where}: expected a file path or {{builtin: NAME, ...}}, got {spec!r}")
        traj, _ = normalize_world_up(traj, args.world_up)
    except InputError as exc:
        msg = str(exc)
        raise InputError(msg if msg.startswith(f"job {job}") else f"{where}: {msg}") from exc
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from exc
    return traj


def parse_jobs(data: Any, base_dir: Path) -> list[Job]:
    """Check every job of a parsed jobs file; the first problem raises (naming the job and field).

    Raises:
        InputError: an empty or malformed file, an unknown or missing field, a bad value, a
            trajectory that does not load, duplicate names, options `srender render` would refuse.
    """
    from srender_ros.cli.render_cmd import generator_settings, pipeline_config
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.store import world_id_for_prompt

    defaults: dict[str, Any] = {}
    if isinstance(data, dict):
        unknown = set(data) - {"defaults", "jobs"}
        if unknown:
            raise InputError(f"jobs file: unknown top-level key(s) {sorted(unknown)}; expected 'defaults' and 'jobs'")
        defaults = data.get("defaults") or {}
        data = data.get("jobs")
        if not isinstance(defaults, dict):
            raise InputError("jobs file: 'defaults' must be a mapping of job fields")
    if not isinstance(data, list) or not data:
        raise InputError("jobs file: expected a non-empty list of jobs (or {defaults: ..., jobs: [...]})")
    parser = _render_parser()
    options = _options(parser)
    jobs: list[Job] = []
    names: set[str] = set()
    for k, raw in enumerate(data):
        label = f"#{k}"
        if not isinstance(raw, dict):
            raise InputError(f"job {label}: expected a mapping of fields, got {raw!r}")
        fields = {**defaults, **raw}
        name = fields.pop("name", f"job-{k:03d}")
        label = f"#{k} ({name!r})" if "name" in raw or "name" in defaults else f"#{k}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise InputError(f"job {label}: field 'name' must be 1-100 letters, digits, '.', '_' or '-'")
        if name in names:
            raise InputError(f"job {label}: field 'name' {name!r} is used by an earlier job")
        names.add(name)
        if "format" in fields:
            if "trajectory_format" in fields:
                raise InputError(f"job {label}: give 'format' or 'trajectory_format', not both")
            fields["trajectory_format"] = fields.pop("format")
        for req in ("prompt", "trajectory"):
            if req not in fields or fields[req] in (None, ""):
                raise InputError(f"job {label}: field {req!r} is missing")
        prompt = fields.pop("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"job {label}: field 'prompt' must be a non-empty string")
        spec = fields.pop("trajectory")
        extras = {key: fields.pop(key) for key in list(fields) if key in EXTRA_KEYS}
        for key, val in extras.items():
            if not isinstance(val, EXTRA_KEYS[key]):
                raise InputError(f"job {label}: field {key!r} must be {EXTRA_KEYS[key].__name__}, got {val!r}")
        unknown_fields = sorted(set(fields) - set(options))
        if unknown_fields:
            raise InputError(f"job {label}: unknown field(s) {unknown_fields}; valid fields: "
                             f"{sorted(set(options) | set(EXTRA_KEYS) | {'prompt', 'trajectory', 'format'})}")
        args = parser.parse_args(["--prompt", prompt, "--trajectory", "-", "--metrics-json", "-"])
        for key, val in fields.items():
            setattr(args, key, _coerce(label, key, val, options[key]))
        try:
            Intrinsics.from_fov(args.width, args.height, args.fov_deg)
            pipeline_config(args)
            generator_settings(args)
        except InputError as exc:
            raise InputError(f"job {label}: {exc}") from exc
        if extras.get("ground_truth") and args.generator != "procedural":
            raise InputError(f"job {label}: field 'ground_truth' needs generator procedural")
        if args.image:
            image = Path(args.image).expanduser()
            args.image = str(image if image.is_absolute() else base_dir / image)
            if not Path(args.image).is_file():
                raise InputError(f"job {label}: field 'image': no such file {args.image}")
        traj = _trajectory(label, spec, args, base_dir)
        jobs.append(Job(name, prompt, world_id_for_prompt(prompt), args, traj, bool(extras.get("video", False)),
                        bool(extras.get("ground_truth", False))))
    return jobs


def load_jobs(path: Path | str) -> list[Job]:
    """Read and check a jobs file (YAML or JSON). Raises InputError naming the job and field."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--jobs {p}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"--jobs {p}: not valid YAML: {exc}") from exc
    return parse_jobs(data, p.resolve().parent)
