"""Learned keyframe-count predictor: prediction speed, count error and render quality.

    python benchmarks/bench_learned.py speed                 # prediction time for 600 poses on CPU
    python benchmarks/bench_learned.py counts --labels held_out.npz [--train-labels train.npz] [--weights DIR] [--json OUT]
    python benchmarks/bench_learned.py quality --samples 16 --seed 2000 [--width 160 --height 120] [--json OUT]
    python benchmarks/bench_learned.py heldout --train-labels a.npz --eval-labels b.npz --exclude-family handheld
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

    from srender_ros.backends.learned.features import trajectory_tokens
    from srender_ros.backends.learned.predictor import KeyframeCountPredictor, load_default_predictor
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.trajectory_gen import make_trajectory

    t0 = time.perf_counter()
    pred = KeyframeCountPredictor.from_dir(args.weights) if args.weights else load_default_predictor()
    load_s = time.perf_counter() - t0
    K = Intrinsics.from_fov(320, 240, 90.0)
    traj = make_trajectory("walk", fps=30.0, duration_s=20.0, seed=0)
    assert len(traj) == 600
    image = np.random.default_rng(0).uniform(size=(240, 320, 3)).astype(np.float32)
    import os

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model_name = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), "?")
    out: dict[str, Any] = {"poses": len(traj), "load_s": round(load_s, 3), "torch_threads": torch.get_num_threads(),
                           "cpu": model_name, "cores": os.cpu_count(),
                           "torch": torch.__version__,
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
            ts, cs = [], []
            for _ in range(args.repeats):
                t, c = time.perf_counter(), time.process_time()
                fn()
                ts.append((time.perf_counter() - t) * 1e3)
                cs.append((time.process_time() - c) * 1e3)
            # Wall and CPU time (process_time, all threads): on a shared machine wall time includes waiting.
            rows[name] = {"median": round(statistics.median(ts), 2), "p90": round(float(np.percentile(ts, 90)), 2),
                          "cpu_median": round(statistics.median(cs), 2)}
        out[label] = rows
    return out


def _motion(samples: Any) -> np.ndarray:
    """[S, 2] path length (m) and total rotation (rad) of each sample's trajectory."""
    rows = []
    for s in samples:
        T = s.trajectory.T_world_cam
        path = float(np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1).sum())
        rel = np.einsum("nji,njk->nik", T[:-1, :3, :3], T[1:, :3, :3])  # R_i^T R_{i+1}
        cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
        rows.append((path, float(np.arccos(cos).sum())))
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def baselines(train: Any, test: Any) -> dict[str, np.ndarray]:
    """Trivial count predictors fitted on ``train`` (least squares), evaluated on ``test``.

    - train_mean: the mean training count for every trajectory.
    - linear_path_rotation: a + b * path length (m) + c * total rotation (rad).
    - loglinear_path_rotation_duration: log count = a + b log(1 + path) + c log(1 + rotation) + d log(duration).
    """
    y = np.array([s.count for s in train], dtype=np.float64)
    mtr, mte = _motion(train), _motion(test)
    dtr = np.array([max(s.trajectory.duration_s, 1e-3) for s in train])
    dte = np.array([max(s.trajectory.duration_s, 1e-3) for s in test])
    out = {"train_mean": np.full(len(test), y.mean())}
    A = np.c_[np.ones(len(train)), mtr]
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    out["linear_path_rotation"] = np.c_[np.ones(len(test)), mte] @ coef
    B = np.c_[np.ones(len(train)), np.log1p(mtr), np.log(dtr)]
    coef = np.linalg.lstsq(B, np.log(np.maximum(y, 1)), rcond=None)[0]
    out["loglinear_path_rotation_duration"] = np.exp(np.c_[np.ones(len(test)), np.log1p(mte), np.log(dte)] @ coef)
    return out


def _by_family(samples: Any, pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    from srender_ros.tooling.learned.train import count_metrics

    out = {}
    for fam in sorted({s.spec.family for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.spec.family == fam]
        out[fam] = count_metrics(pred[idx], labels[idx])
    return out


def bench_counts(args: argparse.Namespace) -> dict[str, Any]:
    from srender_ros.backends.learned.predictor import DEFAULT_WEIGHTS_DIR, KeyframeCountPredictor
    from srender_ros.tooling.learned.labels import load_labels
    from srender_ros.tooling.learned.train import count_metrics, predict_counts

    pred = KeyframeCountPredictor.from_dir(args.weights or DEFAULT_WEIGHTS_DIR)
    samples = [s for p in args.labels for s in load_labels(Path(p))[0]]
    labels = np.array([s.count for s in samples], dtype=np.float64)
    p_img = predict_counts(pred.model, samples, True)
    p_no = predict_counts(pred.model, samples, False)
    out: dict[str, Any] = {"samples": len(samples), "label_files": [Path(p).name for p in args.labels],
                           "with_image": count_metrics(p_img, labels), "no_image": count_metrics(p_no, labels)}
    base: dict[str, np.ndarray] = {}
    if args.train_labels:
        train = [s for p in args.train_labels for s in load_labels(Path(p))[0]]
        base = baselines(train, samples)
        out["train_samples"] = len(train)
        for name, b in base.items():
            out[name] = count_metrics(b, labels)
    out["no_image_by_family"] = _by_family(samples, p_no, labels)
    for name, b in base.items():
        out[f"{name}_by_family"] = _by_family(samples, b, labels)
    out["points"] = [{"family": s.spec.family, "scene": s.spec.scene, "duration_s": s.spec.duration_s,
                      "label": int(s.count), "pred_image": round(float(a), 3), "pred_no_image": round(float(b), 3),
                      **{name: round(float(v[i]), 3) for name, v in base.items()}}
                     for i, (s, a, b) in enumerate(zip(samples, p_img, p_no))]
    return out


def bench_heldout(args: argparse.Namespace) -> dict[str, Any]:
    """Generalization: train without some trajectory families / scenes, evaluate only on them.

    The architecture and training settings are the shipped model's defaults (ModelConfig(),
    TrainConfig()) with --epochs / --prefixes / --train-seed; the same trivial baselines are fitted
    on the same reduced training set.
    """
    from srender_ros.tooling.learned.labels import load_labels
    from srender_ros.tooling.learned.train import TrainConfig, count_metrics, fit, predict_counts

    if not args.exclude_family and not args.exclude_scene:
        raise SystemExit("heldout: name at least one --exclude-family or --exclude-scene")

    def held(s: Any) -> bool:
        return s.spec.family in args.exclude_family or s.spec.scene in args.exclude_scene

    train = [s for p in args.train_labels for s in load_labels(Path(p))[0] if not held(s)]
    test = [s for p in args.eval_labels for s in load_labels(Path(p))[0] if held(s)]
    if not test:
        raise SystemExit("heldout: no evaluation sample belongs to the excluded families/scenes")
    cfg = TrainConfig(epochs=args.epochs, prefixes_per_sample=args.prefixes, seed=args.train_seed)
    t0, c0 = time.perf_counter(), time.process_time()
    result = fit(train, cfg)
    labels = np.array([s.count for s in test], dtype=np.float64)
    p_no = predict_counts(result.model, test, False)
    out: dict[str, Any] = {
        "excluded_families": args.exclude_family, "excluded_scenes": args.exclude_scene,
        "train_samples": len(train), "eval_samples": len(test), "epochs": args.epochs, "prefixes": args.prefixes,
        "train_wall_s": round(time.perf_counter() - t0, 1), "train_cpu_s": round(time.process_time() - c0, 1),
        "final_loss": result.history[-1],
        "trained_without_no_image": count_metrics(p_no, labels),
        "trained_without_with_image": count_metrics(predict_counts(result.model, test, True), labels),
        "trained_without_by_family": _by_family(test, p_no, labels)}
    for name, b in baselines(train, test).items():
        out[name] = count_metrics(b, labels)
    return out


def _run(pipeline: Any, prompt: str, traj: Any, K: Any, gt: Any) -> dict[str, Any]:
    from srender_ros.core.metrics import psnr_db
    from srender_ros.engine.pipeline import RenderJob

    t, c = time.perf_counter(), time.process_time()
    run = pipeline.run(RenderJob(prompt, traj, K))
    psnrs = []
    for chunk in run:
        for j, i in enumerate(chunk.indices):
            psnrs.append(psnr_db(chunk.render.rgb[j], gt[i]))
    return {"keyframes": len(run.schedule.keyframes), "predicted": run.schedule.predicted_count,
            "psnr_db": float(np.mean(psnrs)), "hole_fraction": run.stats.hole_fraction_mean,
            "seconds": round(time.perf_counter() - t, 2), "cpu_s": round(time.process_time() - c, 2)}


def bench_quality(args: argparse.Namespace) -> dict[str, Any]:
    from srender_ros.backends.generators.registry import make_generator
    from srender_ros.backends.learned.predictor import DEFAULT_WEIGHTS_DIR, KeyframeCountPredictor
    from srender_ros.backends.render.registry import get_renderer
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.store import WorldStore
    from srender_ros.engine.pipeline import Pipeline, PipelineConfig
    from srender_ros.engine.scheduler import SchedulerKind
    from srender_ros.tooling.learned.labels import LabelConfig, draw_specs, spec_trajectory

    pred = KeyframeCountPredictor.from_dir(args.weights or DEFAULT_WEIGHTS_DIR)
    K = Intrinsics.from_fov(args.width, args.height, 90.0)
    lcfg = LabelConfig(min_duration_s=args.min_duration, max_duration_s=args.max_duration, fps=args.fps)
    renderer = get_renderer("cpu")
    generator: Any = make_generator("procedural")  # the procedural generator has ground_truth()
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
            "min_duration_s": args.min_duration, "max_duration_s": args.max_duration, "summary": summary, "rows": rows}


def plot(args: argparse.Namespace) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = json.loads(Path(args.counts).read_text())
    quality = json.loads(Path(args.quality).read_text())
    fig, (a, c, b) = plt.subplots(1, 3, figsize=(16, 4.6))
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
    series = [("learned (no image)", "no_image")] + [
        (k, k) for k in ("train_mean", "linear_path_rotation", "loglinear_path_rotation_duration") if k in counts]
    width = 0.8 / len(series)
    for j, (name, key) in enumerate(series):
        fam_m = counts[f"{key}_by_family"]
        c.bar(np.arange(len(fams)) + j * width, [100 * fam_m[f]["within_1_5"] for f in fams], width,
              label=f"{name}: {100 * counts[key]['within_1_5']:.0f}% overall")
    ticks = [f.replace("_", "\n") + f"\n(n={counts['no_image_by_family'][f]['n']})" for f in fams]
    c.set_xticks(np.arange(len(fams)) + 0.4 - width / 2, ticks, fontsize=7)
    c.set_ylabel("% of held-out trajectories within 1.5x of the oracle")
    c.set_ylim(0, 140)
    c.set_yticks(range(0, 101, 20))
    c.set_title("counts within 1.5x, by trajectory family")
    c.legend(fontsize=7, loc="upper left", ncol=2)
    # Quality as the paired difference to the coverage oracle on the same trajectory (absolute
    # PSNR varies more between scenes than between schedulers).
    rows = quality["rows"]
    names = ["learned", "learned_only", "uniform_8"]
    diffs = [[r[n]["psnr_db"] - r["coverage"]["psnr_db"] for r in rows] for n in names]
    kf = [np.mean([r[n]["keyframes"] for r in rows]) for n in names]
    b.boxplot(diffs, tick_labels=[f"{n}\n{k:.1f} kf" for n, k in zip(names, kf)], showfliers=False)
    for j, d in enumerate(diffs):
        b.scatter(np.full(len(d), j + 1) + np.linspace(-0.15, 0.15, len(d)), d, s=10, alpha=0.6)
    b.axhline(0.0, color="k", lw=0.8)
    b.axhline(-1.0, color="r", ls="--", lw=0.8, label="goal: within 1 dB of the oracle")
    b.set_ylabel("PSNR minus coverage oracle's PSNR, dB")
    cov_kf = np.mean([r["coverage"]["keyframes"] for r in rows])
    b.set_title(f"quality on {len(rows)} held-out trajectories ({quality['width']}x{quality['height']}; "
                f"oracle {cov_kf:.1f} kf)", fontsize=10)
    b.legend(fontsize=7, loc="lower left")
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
    c.add_argument("--train-labels", action="append", default=None, help="training labels (fits the trivial baselines)")
    q = sub.add_parser("quality")
    q.add_argument("--samples", type=int, default=16)
    q.add_argument("--seed", type=int, default=2000)
    q.add_argument("--width", type=int, default=160)
    q.add_argument("--height", type=int, default=120)
    q.add_argument("--fps", type=float, default=10.0)
    q.add_argument("--min-duration", type=float, default=2.0)
    q.add_argument("--max-duration", type=float, default=20.0)
    q.add_argument("--weights", default=None)
    h = sub.add_parser("heldout")
    h.add_argument("--train-labels", action="append", required=True)
    h.add_argument("--eval-labels", action="append", required=True)
    h.add_argument("--exclude-family", action="append", default=[])
    h.add_argument("--exclude-scene", action="append", default=[])
    h.add_argument("--epochs", type=int, default=50)
    h.add_argument("--prefixes", type=int, default=4)
    h.add_argument("--train-seed", type=int, default=0)
    p = sub.add_parser("plot")
    p.add_argument("--counts", required=True)
    p.add_argument("--quality", required=True)
    p.add_argument("--out", default="docs/img/learned_scheduler.png")
    for s in (sp, c, q, h):
        s.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()
    result = {"speed": bench_speed, "counts": bench_counts, "quality": bench_quality, "heldout": bench_heldout,
              "plot": plot}[args.what](args)
    text = json.dumps(result, indent=2)
    if getattr(args, "json", None):
        Path(args.json).write_text(text + "\n")
    print(text if args.what != "counts" else json.dumps({k: v for k, v in result.items() if k != "points"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
