"""`srender world`: import, export, list, inspect and remove stored Gaussian worlds."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from srender_ros.core.store import WorldInfo, WorldStore

_ENV = "SRENDER_WORLD_DIR"  # same as srender_ros.core.store.ENV_WORLD_DIR (not imported: keep --help fast)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``world`` subcommand and its actions."""
    parser = subparsers.add_parser(
        "world", help="manage stored Gaussian worlds (import/export PLY, list, info, rm)",
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

    p = add("export", "write a world's Gaussians as a standard 3DGS PLY")
    add_which(p)
    p.add_argument("--out", required=True, metavar="FILE.ply", help="output file (replaced atomically)")
    p.set_defaults(func=_run_export)

    p = add("list", "list the stored worlds")
    p.set_defaults(func=_run_list)

    p = add("info", "show one world's manifest summary and verify its files")
    add_which(p)
    p.add_argument("--no-verify", action="store_true", help="skip checking file checksums (faster)")
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
    store = _store(args)
    wid = _which(args)
    out = store.export_ply(wid, args.out)
    print(f"wrote world {store.resolve_id(wid)} to {out} ({_human_bytes(os.path.getsize(out))})")
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
    return 0


def _run_rm(args: argparse.Namespace) -> int:
    store = _store(args)
    wid = _which(args)
    info = store.remove(wid)
    print(f"removed world {info.world_id} ({info.prompt!r}, {info.gaussians} Gaussians)", file=sys.stdout)
    return 0
