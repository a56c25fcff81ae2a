"""`srender` entry point: one subcommand per module, errors reported without tracebacks.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func=run`` with ``run(args: argparse.Namespace) -> int``. Heavy imports happen inside ``run``
so that ``srender --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from srender_ros.errors import SrenderError

#: subcommand name -> module (relative to srender_ros.cli). A missing module is simply not offered.
SUBCOMMANDS = {
    "demo": "demo_cmd",
    "render": "render_cmd",
    "world": "world_cmd",
    "bag": "bag_cmd",
    "scheduler": "scheduler_cmd",
    "batch": "batch_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srender",
        description="Camera images along trajectories from sparse diffusion keyframes and 3D Gaussian worlds.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in SUBCOMMANDS.values():
        try:
            mod = importlib.import_module(f"srender_ros.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"srender_ros.cli.{module}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except SrenderError as exc:
        print(f"srender {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"srender {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
