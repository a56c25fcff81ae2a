#!/usr/bin/env python
"""Tables and plots of issue 17's quality runs (bench_quality.py --compare-inbetween / --compare-depth).

    .venv/bin/python benchmarks/plot_issue17.py bench_out/q17_inbetween/quality.json bench_out/q17_depth/quality.json \
        --out docs/img

Writes inbetween_quality.png (per-frame PSNR along each path, render vs interpolate, keyframes
marked) and prints the markdown tables used in docs/quality.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="quality.json files")
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    runs: list[dict[str, Any]] = [r for p in args.runs for r in json.loads(p.read_text()) if "error" not in r]
    errors = [r for p in args.runs for r in json.loads(p.read_text()) if "error" in r]
    print("| path | frames from | keyframes | PSNR dB | SSIM | PSNR between first and last keyframe | "
          "temporal error | holes | time per frame ms | load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        if r.get("depth_source", "exact") != "exact":
            continue
        print(f"| {r['path']} | {r['inbetween']} | {r['keyframes']} | {r['psnr_mean']:.2f} | {r['ssim_mean']:.3f} | "
              f"{_fmt(r['psnr_between_keyframes'], '.2f')} | {_fmt(r['temporal_error_mean'], '.4f')} | "
              f"{100 * r['hole_fraction_mean']:.2f} % | {1000 * r['seconds_per_frame_inbetween']:.1f} | "
              f"{r['loadavg'][0]:.1f} |")
    for e in errors:
        print(f"| {e['path']} | {e['inbetween']} | error: {e['error']} |")
    print()
    print("| path | depth | first keyframe scale | keyframes | PSNR dB | SSIM | depth AbsRel | holes | temporal error |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        if r.get("inbetween", "render") != "render":
            continue
        print(f"| {r['path']} | {r.get('depth_source', 'exact')} | {r.get('first_keyframe_scale') or '-'} | "
              f"{r['keyframes']} | {r['psnr_mean']:.2f} | {r['ssim_mean']:.3f} | {_fmt(r['depth_abs_rel_mean'], '.3f')} | "
              f"{100 * r['hole_fraction_mean']:.2f} % | {_fmt(r['temporal_error_mean'], '.4f')} |")
    plot(runs, args.out / "inbetween_quality.png")


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Per-frame PSNR along each path: 3D render vs 2D interpolation on the same keyframes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({r["path"] for r in runs if r.get("inbetween") == "interpolate"})
    if not names:
        return
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.4 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        for mode, style in (("render", "-"), ("interpolate", "--")):
            r = next((r for r in runs if r["path"] == name and r.get("inbetween") == mode
                      and r.get("depth_source", "exact") == "exact"), None)
            if r is None:
                continue
            idx = [p[0] for p in r["per_frame"]]
            ps = [p[1] for p in r["per_frame"]]
            ax.plot(idx, ps, style, label=f"{mode} ({r['psnr_mean']:.1f} dB, temporal {r['temporal_error_mean']:.3f})")
            if mode == "render":
                for k in r.get("keyframe_indices", []):
                    ax.axvline(k, color="0.8", lw=0.6, zorder=0)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("PSNR dB")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[-1, 0].set_xlabel("frame (30 fps); grey lines: keyframes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
