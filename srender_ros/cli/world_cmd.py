"""`srender world`: import, export, list, inspect, remove and view stored Gaussian worlds."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from srender_ros.core.store import WorldInfo, WorldStore

_ENV = "SRENDER_WORLD_DIR"  # same as srender_ros.core.store.ENV_WORLD_DIR (not imported: keep --help fast)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``world`` subcommand and its actions."""
    parser = subparsers.add_parser(
        "world", help="manage stored Gaussian worlds (import/export, list, info, rm, view in a browser)",
        description="Manage the per-prompt Gaussian worlds in a world directory "
                    f"(default: ${_ENV}, else ~/.cache/srender/worlds).")
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="world_command", metavar="ACTION")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--world-dir", default=None,
                       help=f"directory holding the worlds (default: ${_ENV}, else ~/.cache/srender/worlds)")
        return p

    def add_which(p: argparse.ArgumentParser) -> None:
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--prompt", help="environment prompt of the world")
        g.add_argument("--id", dest="world_id", help="world id (16 hex digits, as `world list` shows)")

    p = add("import", "make a 3D Gaussian Splatting PLY the world of a prompt")
    p.add_argument("ply", metavar="FILE.ply", help="binary little-endian 3DGS PLY")
    p.add_argument("--prompt", required=True, help="environment prompt the world belongs to")
    p.set_defaults(func=_run_import)

    p = add("export", "write a world's Gaussians as 3DGS PLY (lossless), SPZ, compressed PLY or USD (Isaac Sim)")
    add_which(p)
    p.add_argument("--out", required=True, metavar="FILE", help="output file (replaced atomically)")
    p.add_argument("--format", dest="export_format", default=None,
                   choices=["ply", "spz", "compressed-ply", "usd"],
                   help="ply: standard 3DGS PLY, lossless; spz: Niantic SPZ (gzip, ~10x smaller); compressed-ply: "
                        "PlayCanvas/SuperSplat compressed PLY; usd: OpenUSD ParticleField3DGaussianSplat for Isaac Sim "
                        "(.usd/.usda/.usdc/.usdz). Default: from the --out extension, else ply")
    p.set_defaults(func=_run_export)

    p = add("refine", "fit a stored world to its keyframe images (the long whole-world photometric refinement; "
                      "minutes to an hour of CPU, see docs/refine.md)")
    add_which(p)
    p.add_argument("--iterations", type=int, default=1000, help="optimizer steps (default 1000)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: gsplat on CUDA when usable, else torch on CPU")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is often fastest on a busy machine)")
    p.set_defaults(func=_run_refine)

    p = add("view", "serve a world in the browser: splats, keyframes (images on click), a trajectory's coverage")
    add_which(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    p.add_argument("--trajectory", default=None, metavar="FILE",
                   help="also draw this trajectory, coloured by how much of each view the world covers")
    p.add_argument("--trajectory-format", choices=["tum", "kitti", "euroc", "path-yaml"], default=None,
                   help="file format (default: from the extension and content)")
    p.add_argument("--pose-frame", choices=["optical", "body"], default=None,
                   help="rotation convention of the file (default: optical for TUM/KITTI, body for EuRoC and Path)")
    p.add_argument("--world-up", default="+z", help="world axis pointing up in the trajectory file (default +z)")
    p.add_argument("--fps", type=float, default=None, help="stamps for KITTI files")
    p.add_argument("--width", type=int, default=320, help="camera width for coverage, pixels (default 320)")
    p.add_argument("--height", type=int, default=240, help="camera height for coverage, pixels (default 240)")
    p.add_argument("--fov-deg", type=float, default=90.0, help="camera horizontal field of view (default 90)")
    p.add_argument("--coverage-threshold", type=float, default=0.02,
                   help="tau: poses whose uncovered fraction exceeds it are marked (default 0.02, as `render`)")
    p.add_argument("--renderer", choices=["auto", "cpu", "gsplat"], default="auto", help="renderer for coverage")
    p.add_argument("--max-splats", type=int, default=300_000,
                   help="Gaussians sent to the browser at most; bigger worlds show a uniform subset (default 300000)")
    p.add_argument("--exit-after", type=float, default=None, help=argparse.SUPPRESS)  # tests and screenshots
    p.set_defaults(func=_run_view)

    p = add("list", "list the stored worlds")
    p.set_defaults(func=_run_list)

    p = add("info", "show one world's manifest summary and verify its files")
    add_which(p)
    p.add_argument("--no-verify", action="store_true", help="skip checking file checksums (faster)")
    p.add_argument("--keyframes", action="store_true",
                   help="also list every keyframe: pose, Gaussians it added and removed (by reason), why it was made")
    p.set_defaults(func=_run_info)

    p = add("rm", "delete a stored world")
    add_which(p)
    p.set_defaults(func=_run_rm)


def _store(args: argparse.Namespace) -> WorldStore:
    from srender_ros.core.store import WorldStore

    return WorldStore(args.world_dir if args.world_dir else None)


def _which(args: argparse.Namespace) -> str:
    """What --prompt or --id selects, as the store's ``prompt_or_id`` argument."""
    from srender_ros.core.manifest import is_world_id
    from srender_ros.errors import InputError

    if args.world_id is not None:
        if not is_world_id(args.world_id.strip()):
            raise InputError(f"--id {args.world_id!r}: expected 16 hex digits (see `srender world list`)")
        return str(args.world_id.strip())
    return str(args.prompt)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _print_table(rows: list[list[str]], header: list[str], right: set[int]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join(cells).rstrip())


def _run_import(args: argparse.Namespace) -> int:
    store = _store(args)
    state = store.import_ply(args.ply, args.prompt)
    print(f"imported {len(state.world)} Gaussians (SH degree {state.world.sh_degree}) from {args.ply}")
    print(f"world {state.world_id} for prompt {state.prompt!r} in {store.world_dir(state.world_id)}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from srender_ros.backends.export import format_for_path, get_exporter

    fmt = args.export_format or format_for_path(args.out)
    if fmt == "ply":  # the store's own lossless writer (the in-memory version if loaded)
        store = _store(args)
        wid = _which(args)
        out = store.export_ply(wid, args.out)
        print(f"wrote world {store.resolve_id(wid)} to {out} ({_human_bytes(os.path.getsize(out))})")
        return 0
    from srender_ros.viewer.data import load_world

    exporter = get_exporter(fmt)
    exporter.check_available()  # before loading a large world: says which package is missing
    snap = load_world(args.world_dir, prompt=args.prompt, world_id=args.world_id)
    out = exporter.write(snap.world, args.out)
    print(f"wrote world {snap.world_id} ({len(snap.world)} Gaussians) as {fmt} to {out} "
          f"({_human_bytes(os.path.getsize(out))})")
    return 0


def _run_refine(args: argparse.Namespace) -> int:
    from srender_ros.core.ports.refine import RefineConfig
    from srender_ros.errors import InputError

    config = RefineConfig(iterations=args.iterations, device=args.device, threads=args.threads)  # checks values first
    store = _store(args)
    prompt = args.prompt if args.prompt is not None else store.info(_which(args)).prompt
    state = store.get(prompt)
    if state is None:
        raise InputError(f"no stored world for prompt {prompt!r} (see `srender world list`)")
    if not state.keyframes:
        raise InputError(f"world {state.world_id} has no keyframe images to refine against (a world imported from a "
                         "PLY keeps none); nothing was changed. Refine worlds made by `srender render`.")
    from srender_ros.app.compose import build_refiner
    from srender_ros.engine.refinement import refine_state

    report = refine_state(state, build_refiner(), config)
    if report.applied:
        store.save(state)
    print(f"refined world {state.world_id} ({report.gaussians} Gaussians, {report.keyframes} keyframes) on "
          f"{report.backend}: {report.iterations} steps in {report.seconds:.1f} s, keyframe PSNR "
          f"{report.psnr_before_db:.2f} -> {report.psnr_after_db:.2f} dB" + ("" if report.applied else f" ({report.note})"))
    return 0


def _run_view(args: argparse.Namespace) -> int:
    import time

    from srender_ros.viewer import ViewerConfig, WorldViewer
    from srender_ros.viewer.data import load_world
    from srender_ros.viewer.server import check_port_free

    config = ViewerConfig(host=args.host, port=args.port, max_splats=args.max_splats)  # checks before loading
    check_port_free(config.host, config.port)
    snap = load_world(args.world_dir, prompt=args.prompt, world_id=args.world_id)
    path = None
    if args.trajectory:
        from srender_ros.core.camera import Intrinsics
        from srender_ros.core.resample import normalize_world_up
        from srender_ros.core.trajectory_io import load_trajectory
        from srender_ros.viewer.data import trajectory_coverage

        traj = load_trajectory(args.trajectory, fmt=args.trajectory_format, pose_frame=args.pose_frame, fps=args.fps)
        traj, _ = normalize_world_up(traj, args.world_up)
        from srender_ros.errors import InputError

        if not 0.0 <= args.coverage_threshold < 1.0:
            raise InputError(f"--coverage-threshold {args.coverage_threshold}: must be in [0, 1)")
        t0 = time.perf_counter()
        covered = trajectory_coverage(args.world_dir, snap.prompt, traj, Intrinsics.from_fov(args.width, args.height,
                                                                                               args.fov_deg),
                                      renderer=args.renderer)
        print(f"coverage of {len(traj)} poses: mean {covered.mean():.3f}, min {covered.min():.3f} "
              f"({time.perf_counter() - t0:.1f} s)")
        path = (os.path.basename(args.trajectory), traj, covered)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"srender world view: warning: --host {args.host} makes the world visible to other machines")
    viewer = WorldViewer(config)
    try:
        viewer.show_world(snap)
        if path is not None:
            viewer.show_trajectory(path[0], path[1].T_world_cam, path[2], args.coverage_threshold)
        sub = f", showing {viewer.shown_splats:,}" if viewer.shown_splats < len(snap.world) else ""
        with _stop_on_signal() as stop:
            print(f"srender world view: world {snap.world_id} ({len(snap.world):,} Gaussians{sub}, "
                  f"{len(snap.keyframes)} keyframes) at {viewer.url}  (Ctrl-C stops)", flush=True)
            stop.wait(args.exit_after)
    finally:
        viewer.close()
    print("srender world view: stopped", flush=True)
    return 0


def _truncate(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    infos = store.list()
    if not infos:
        print(f"no worlds in {store.root}")
        return 0
    rows = []
    for i in infos:
        if i.error:
            # The path is the world's own directory: leave it out so the reason fits on the line.
            why = i.error.replace(f"{i.path}{os.sep}", "") if i.path else i.error
            rows.append([i.world_id, "-", "-", _human_bytes(i.bytes_on_disk), "-", f"DAMAGED: {_truncate(why, 100)}"])
        else:
            rows.append([i.world_id, str(i.gaussians), str(i.keyframes), _human_bytes(i.bytes_on_disk), i.updated_utc,
                         _truncate(i.prompt)])
    print(f"{len(infos)} world(s) in {store.root}")
    _print_table(rows, ["ID", "GAUSSIANS", "KEYFRAMES", "SIZE", "UPDATED (UTC)", "PROMPT"], right={1, 2, 3})
    return 0


def _info_lines(info: WorldInfo) -> list[tuple[str, str]]:
    return [("id", info.world_id), ("prompt", info.prompt), ("path", str(info.path) if info.path else "(not saved)"),
            ("gaussians", str(info.gaussians)), ("sh degree", str(info.sh_degree)), ("keyframes", str(info.keyframes)),
            ("generator", info.generator or "-"), ("size on disk", _human_bytes(info.bytes_on_disk)),
            ("created (UTC)", info.created_utc), ("updated (UTC)", info.updated_utc)]


def _run_info(args: argparse.Namespace) -> int:
    store = _store(args)
    wid = _which(args)
    info = store.info(wid, verify=not args.no_verify)
    for key, value in _info_lines(info):
        print(f"{key:>14}: {value}")
    print(f"{'checksums':>14}: {'not checked' if args.no_verify else 'ok'}")
    if getattr(args, "keyframes", False):
        _print_keyframes(store, info)
    return 0


def _print_keyframes(store: WorldStore, info: WorldInfo) -> None:
    """The per-keyframe ledger of a saved world's manifest: what each keyframe added and removed."""
    from srender_ros.core.cell_store import read_cells_manifest

    if info.path is None:
        print("keyframes: the world is not saved yet (the ledger is read from its manifest)")
        return
    entries = read_cells_manifest(info.path).get("keyframes", [])
    rows = []
    for i, e in enumerate(entries):
        added, removed = int(e.get("gaussians_added", -1)), int(e.get("gaussians_removed", -1))
        by = e.get("removed_by") or {}
        rows.append([str(i), str(e.get("pose_index", -1)), "-" if added < 0 else str(added),
                     "-" if removed < 0 else str(removed),
                     " ".join(f"{k}={v}" for k, v in by.items() if v) or "-", _truncate(str(e.get("reason", "")), 60)])
    _print_table(rows, ["#", "POSE", "ADDED", "REMOVED", "REMOVED BY", "REASON"], right={0, 1, 2, 3})
    known = [e for e in entries if int(e.get("gaussians_added", -1)) >= 0]
    if known:
        print(f"total: +{sum(int(e['gaussians_added']) for e in known)} "
              f"-{sum(max(0, int(e.get('gaussians_removed', 0))) for e in known)} Gaussians over {len(known)} keyframes "
              f"(-: not recorded, saved before the ledger existed)")


def _run_rm(args: argparse.Namespace) -> int:
    store = _store(args)
    wid = _which(args)
    info = store.remove(wid)
    print(f"removed world {info.world_id} ({info.prompt!r}, {info.gaussians} Gaussians)", file=sys.stdout)
    return 0


@contextlib.contextmanager
def _stop_on_signal() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM while the block runs, instead of a KeyboardInterrupt.

    An exception raised wherever the main thread happens to be (inside the viewer's calls, or just after the URL is
    printed and before a loop's try) could skip the clean shutdown; an event cannot. Installed before the URL is
    printed, so a user (or test) reacting to the URL at once is handled the same way.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
