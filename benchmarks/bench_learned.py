"""Learned keyframe-count predictor: prediction speed, count error and render quality.

    python benchmarks/bench_learned.py speed                 # prediction time for 600 poses on CPU
    python benchmarks/bench_learned.py counts --labels held_out.npz [--weights DIR] [--json OUT]
    python benchmarks/bench_learned.py quality --samples 16 --seed 2000 [--width 160 --height 120] [--json OUT]
    python benchmarks/bench_learned.py plot --counts counts.json --quality quality.json --out docs/img/learned.png

`quality` runs four schedulers on the same held-out trajectories through new procedural worlds and
measures PSNR of every rendered frame against the exact procedural ground truth:
coverage (the oracle), learned (the pipeline's scheduler=learned: predicted count placed uniformly,
coverage still adds keyframes where holes remain), learned-only (the paper's method: exactly the
predicted count, placed uniformly, nothing added) and uniform-8 (a fixed count, the pipeline's default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_speed(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.learned.features import trajectory_tokens
    from srender_ros.learned.predictor import KeyframeCountPredictor, load_default_predictor

    t0 = time.perf_counter()
    pred = KeyframeCountPredictor.from_dir(args.weights) if args.weights else load_default_predictor()
    load_s = time.perf_counter() - t0
    K = Intrinsics.from_fov(320, 240, 90.0)
    traj = make_trajectory("walk", fps=30.0, duration_s=20.0, seed=0)
    assert len(traj) == 600
    image = np.random.default_rng(0).uniform(size=(240, 320, 3)).astype(np.float32)
    out: dict[str, Any] = {"poses": len(traj), "load_s": round(load_s, 3), "torch_threads": torch.get_num_threads(),
                           "n_tokens": pred.config.n_tokens, "width": pred.config.width}
    # As shipped (1 thread while predicting) and with torch's own thread setting (threads=0).
    for label, threads in (("shipped", pred.threads), ("torch_default_threads", 0)):
        p = KeyframeCountPredictor(pred.model, threads=threads)
        for _ in range(5):
            p(traj, K)
        rows = {}
        for name, fn in (("features_ms", lambda p=p: trajectory_tokens(traj, K, p.config.n_tokens)),
                         ("predict_ms", lambda p=p: p(traj, K)),
                         ("predict_with_image_ms", lambda p=p: p.predict(traj, K, image))):
            ts = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t) * 1e3)
            rows[name] = {"median": round(statistics.median(ts), 2), "p90": round(float(np.percentile(ts, 90)), 2)}
        out[label] = rows
    return out


def bench_counts(args: argparse.Namespace) -> dict[str, Any]:
    from srender_ros.learned.data import load_labels
    from srender_ros.learned.predictor import DEFAULT_WEIGHTS_DIR, KeyframeCountPredictor
    from srender_ros.learned.train import count_metrics, predict_counts

    pred = KeyframeCountPredictor.from_dir(args.weights or DEFAULT_WEIGHTS_DIR)
    samples = []
    for p in args.labels:
        samples.extend(load_labels(Path(p))[0])
    labels = np.array([s.count for s in samples], dtype=np.float64)
    p_img = predict_counts(pred.model, samples, True)
    p_no = predict_counts(pred.model, samples, False)
    out: dict[str, Any] = {"samples": len(samples), "with_image": count_metrics(p_img, labels),
                           "no_image": count_metrics(p_no, labels)}
    if args.train_median is not None:
        out["constant_train_median"] = count_metrics(np.full(len(labels), args.train_median), labels)
    by_family: dict[str, Any] = {}
    for fam in sorted({s.spec.family for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.spec.family == fam]
        by_family[fam] = count_metrics(p_no[idx], labels[idx])
    out["no_image_by_family"] = by_family
    out["points"] = [{"family": s.spec.family, "scene": s.spec.scene, "duration_s": s.spec.duration_s,
                      "label": int(s.count), "pred_image": round(float(a), 3), "pred_no_image": round(float(b), 3)}
                     for s, a, b in zip(samples, p_img, p_no)]
    return out


def _run(pipeline: Any, prompt: str, traj: Any, K: Any, gt: Any) -> dict[str, Any]:
    from srender_ros.core.metrics import psnr_db
    from srender_ros.core.pipeline import RenderJob

    t = time.perf_counter()
    run = pipeline.run(RenderJob(prompt, traj, K))
    psnrs = []
    for chunk in run:
        for j, i in enumerate(chunk.indices):
            psnrs.append(psnr_db(chunk.render.rgb[j], gt[i]))
    return {"keyframes": len(run.schedule.keyframes), "predicted": run.schedule.predicted_count,
            "psnr_db": float(np.mean(psnrs)), "hole_fraction": run.stats.hole_fraction_mean,
            "seconds": round(time.perf_counter() - t, 2)}


def bench_quality(args: argparse.Namespace) -> dict[str, Any]:
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.pipeline import Pipeline, PipelineConfig, SchedulerKind
    from srender_ros.core.store import WorldStore
    from srender_ros.generators.registry import make_generator
    from srender_ros.learned.data import LabelConfig, draw_specs, spec_trajectory
    from srender_ros.learned.predictor import DEFAULT_WEIGHTS_DIR, KeyframeCountPredictor
    from srender_ros.render.registry import get_renderer

    pred = KeyframeCountPredictor.from_dir(args.weights or DEFAULT_WEIGHTS_DIR)
    K = Intrinsics.from_fov(args.width, args.height, 90.0)
    lcfg = LabelConfig(min_duration_s=args.min_duration, max_duration_s=args.max_duration, fps=args.fps)
    renderer, generator = get_renderer("cpu"), make_generator("procedural")
    rows = []
    with tempfile.TemporaryDirectory(prefix="srender-bench-learned-") as tmp:
        for n, spec in enumerate(draw_specs(args.samples, args.seed, lcfg)):
            traj = spec_trajectory(spec, args.fps)
            gt = generator.ground_truth(spec.prompt, K, traj.T_world_cam).rgb
            count = pred(traj, K)
            configs = {
                "coverage": PipelineConfig(),
                "learned": PipelineConfig(scheduler=SchedulerKind.LEARNED),
                "learned_only": PipelineConfig(scheduler=SchedulerKind.UNIFORM, uniform_keyframes=count),
                "uniform_8": PipelineConfig(scheduler=SchedulerKind.UNIFORM, uniform_keyframes=8),
            }
            row: dict[str, Any] = {"family": spec.family, "scene": spec.scene, "duration_s": spec.duration_s,
                                   "poses": len(traj), "predicted": count}
            for name, cfg in configs.items():
                p = Pipeline(WorldStore(Path(tmp) / f"{n}-{name}"), renderer, generator, cfg, count_predictor=pred)
                row[name] = _run(p, spec.prompt, traj, K, gt)
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {}
    for name in ("coverage", "learned", "learned_only", "uniform_8"):
        ps = np.array([r[name]["psnr_db"] for r in rows])
        kf = np.array([r[name]["keyframes"] for r in rows])
        d = ps - np.array([r["coverage"]["psnr_db"] for r in rows])
        summary[name] = {"psnr_mean_db": round(float(ps.mean()), 2), "psnr_minus_oracle_mean_db": round(float(d.mean()), 2),
                         "psnr_minus_oracle_worst_db": round(float(d.min()), 2), "keyframes_mean": round(float(kf.mean()), 2),
                         "hole_fraction_mean": round(float(np.mean([r[name]["hole_fraction"] for r in rows])), 4)}
    return {"width": args.width, "height": args.height, "fps": args.fps, "samples": len(rows), "seed": args.seed,
            "summary": summary, "rows": rows}


def plot(args: argparse.Namespace) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = json.loads(Path(args.counts).read_text())
    quality = json.loads(Path(args.quality).read_text())
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.4))
    pts = counts["points"]
    lab = np.array([p["label"] for p in pts], dtype=float)
    pr = np.clip(np.round([p["pred_no_image"] for p in pts]), 1, None)
    fams = sorted({p["family"] for p in pts})
    for f in fams:
        m = np.array([p["family"] == f for p in pts])
        a.scatter(lab[m], pr[m], s=18, label=f)
    hi = max(lab.max(), pr.max()) * 1.2
    xs = np.array([1, hi])
    a.plot(xs, xs, "k-", lw=1)
    a.plot(xs, xs * 1.5, "k--", lw=0.8)
    a.plot(xs, xs / 1.5, "k--", lw=0.8)
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("oracle keyframes (coverage walk)")
    a.set_ylabel("predicted keyframes (no image)")
    m = counts["no_image"]
    a.set_title(f"held-out counts: MAE {m['mae']:.1f}, {100 * m['within_1_5']:.0f}% within 1.5x")
    a.legend(fontsize=7, loc="upper left")
    rows = quality["rows"]
    names = ["coverage", "learned", "learned_only", "uniform_8"]
    ps = [[r[n]["psnr_db"] for r in rows] for n in names]
    kf = [np.mean([r[n]["keyframes"] for r in rows]) for n in names]
    b.boxplot(ps, tick_labels=[f"{n}\n{k:.1f} kf" for n, k in zip(names, kf)])
    b.set_ylabel(f"PSNR vs ground truth, dB ({quality['width']}x{quality['height']})")
    b.set_title(f"quality on {len(rows)} held-out trajectories")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    return {"plot": args.out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--weights", default=None)
    sp.add_argument("--repeats", type=int, default=50)
    c = sub.add_parser("counts")
    c.add_argument("--labels", action="append", required=True)
    c.add_argument("--weights", default=None)
    c.add_argument("--train-median", type=float, default=None, help="median training label (constant baseline)")
    q = sub.add_parser("quality")
    q.add_argument("--samples", type=int, default=16)
    q.add_argument("--seed", type=int, default=2000)
    q.add_argument("--width", type=int, default=160)
    q.add_argument("--height", type=int, default=120)
    q.add_argument("--fps", type=float, default=10.0)
    q.add_argument("--min-duration", type=float, default=2.0)
    q.add_argument("--max-duration", type=float, default=20.0)
    q.add_argument("--weights", default=None)
    p = sub.add_parser("plot")
    p.add_argument("--counts", required=True)
    p.add_argument("--quality", required=True)
    p.add_argument("--out", default="docs/img/learned_scheduler.png")
    for s in (sp, c, q):
        s.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()
    result = {"speed": bench_speed, "counts": bench_counts, "quality": bench_quality, "plot": plot}[args.what](args)
    text = json.dumps(result, indent=2)
    if getattr(args, "json", None):
        Path(args.json).write_text(text + "\n")
    print(text if args.what != "counts" else json.dumps({k: v for k, v in result.items() if k != "points"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
