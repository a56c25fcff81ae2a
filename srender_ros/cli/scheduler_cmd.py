"""`srender scheduler labels|train|eval|predict`: the learned keyframe-count predictor.

- labels: run the coverage oracle on procedural worlds and cache the counts (.npz).
- train: fit the model on cached labels (or make labels first) and write safetensors weights,
  config.json and training_config.json (the arguments, seeds and label file checksums).
- eval: count error of a model against oracle labels it was not trained on.
- predict: the count for a trajectory file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from srender_ros.errors import InputError


def _add_label_args(p: argparse.ArgumentParser, samples: int, seed: int) -> None:
    g = p.add_argument_group("oracle labels")
    g.add_argument("--samples", type=int, default=samples, help=f"trajectories to label (default {samples})")
    g.add_argument("--seed", type=int, default=seed, help=f"seed of the drawn trajectories and worlds (default {seed})")
    g.add_argument("--tau", type=float, default=None, help="coverage threshold of the oracle (default: the pipeline's)")
    g.add_argument("--families", default=None, help="comma-separated trajectory families (default: all)")
    g.add_argument("--scenes", default=None, help="comma-separated scene families (default: all)")
    g.add_argument("--min-duration", type=float, default=None, help="shortest trajectory, s (default 2)")
    g.add_argument("--max-duration", type=float, default=None, help="longest trajectory, s (default 60)")
    g.add_argument("--label-fps", type=float, default=None, help="pose rate of labelled trajectories (default 10)")
    g.add_argument("--label-width", type=int, default=None, help="label camera width, px (default 80)")
    g.add_argument("--label-height", type=int, default=None, help="label camera height, px (default 60)")


def _label_config(args: argparse.Namespace) -> Any:
    from srender_ros.tooling.learned.labels import LabelConfig

    kw: dict[str, Any] = {}
    for arg, name in (("tau", "coverage_threshold"), ("min_duration", "min_duration_s"), ("max_duration", "max_duration_s"),
                      ("label_fps", "fps"), ("label_width", "width_px"), ("label_height", "height_px")):
        if getattr(args, arg, None) is not None:
            kw[name] = getattr(args, arg)
    for arg in ("families", "scenes"):
        if getattr(args, arg, None):
            kw[arg] = tuple(x.strip() for x in getattr(args, arg).split(",") if x.strip())
    return LabelConfig(**kw)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_labels(args: argparse.Namespace, out: Path | None) -> list[Any]:
    from srender_ros.tooling.learned.labels import generate_labels, save_labels

    cfg = _label_config(args)
    t0 = time.perf_counter()
    if not getattr(args, "verbose", False):  # one line per label is enough; the pipeline logs every keyframe
        logging.getLogger("srender_ros.engine.pipeline").setLevel(logging.WARNING)

    def progress(i: int, s: Any) -> None:
        print(f"  label {i + 1}/{args.samples}: {s.spec.family:<13} {s.spec.scene:<9} {s.spec.duration_s:6.2f} s "
              f"{len(s.trajectory):4d} poses -> {s.count:3d} keyframes ({s.seconds:.1f} s)", flush=True)

    samples = generate_labels(args.samples, args.seed, cfg, progress=progress)
    if out is not None:
        save_labels(samples, out, cfg, extra={"samples": args.samples, "seed": args.seed,
                                              "seconds": round(time.perf_counter() - t0, 1)})
        print(f"srender scheduler: {len(samples)} labels -> {out}")
    return samples


def _read_labels(paths: list[str]) -> tuple[list[Any], list[dict[str, Any]]]:
    from srender_ros.tooling.learned.labels import load_labels

    samples: list[Any] = []
    sources = []
    for p in paths:
        s, meta = load_labels(Path(p))
        samples.extend(s)
        extra = meta.get("extra") or {}
        sources.append({"file": Path(p).name, "sha256": _sha256(Path(p)), "samples": len(s),
                        "seed": extra.get("seed"), "source_version": meta.get("source_version"),
                        "label_config": meta.get("label_config"),
                        "oracle_pipeline_config": meta.get("oracle_pipeline_config"), "generated_with": extra})
    return samples, sources


def run_labels(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".npz":
        raise InputError(f"--out {out}: the label cache is a .npz file")
    _make_labels(args, out)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from srender_ros.backends.learned.model import ModelConfig, count_parameters
    from srender_ros.backends.learned.predictor import KeyframeCountPredictor
    from srender_ros.tooling.learned.labels import source_version
    from srender_ros.tooling.learned.train import TrainConfig, fit, save_model

    out = Path(args.out)
    if args.labels:
        samples, sources = _read_labels(args.labels)
    else:
        _make_labels(args, out / "labels.npz")
        samples, sources = _read_labels([str(out / "labels.npz")])  # recorded like given label files
    init, init_record = None, None
    if args.init_weights:
        # Fine-tuning: the architecture is the initial model's; its training record goes along, so the
        # new folder still says every label the weights have seen.
        init_dir = Path(args.init_weights)
        init = KeyframeCountPredictor.from_dir(init_dir).model
        mcfg = init.config
        record_path = init_dir / "training_config.json"
        init_record = {"folder": str(init_dir), "sha256": _sha256(init_dir / "model.safetensors"),
                       "training_config": json.loads(record_path.read_text()) if record_path.is_file() else None}
    else:
        mcfg = ModelConfig(n_tokens=args.tokens, width=args.width, layers=args.layers, heads=args.heads,
                           appearance=args.appearance)
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.train_seed,
                       appearance_dropout=args.appearance_dropout, prefixes_per_sample=args.prefixes,
                       warmup_epochs=args.warmup_epochs, model=mcfg)
    print(f"srender scheduler train: {len(samples)} samples, {args.epochs} epochs, seed {args.train_seed}"
          + (f", starting from {args.init_weights}" if init is not None else ""))

    def on_epoch(e: int, loss: float) -> None:
        if e % max(1, args.epochs // 20) == 0 or e == args.epochs - 1:
            print(f"  epoch {e + 1:4d}/{args.epochs}: loss {loss:.3f}", flush=True)

    result = fit(samples, tcfg, on_epoch, init=init)
    arguments = {k: v for k, v in vars(args).items() if k != "func"}
    # The folder is replaced atomically (save_model); a label cache made above is carried over.
    save_model(result.model, out, tcfg, keep=() if args.labels else ("labels.npz",), extra={
        "command": "srender " + shlex.join(sys.argv[1:]), "source_version": source_version(),
        "labels": sources, "arguments": arguments, "final_loss": result.history[-1], "seconds": round(result.seconds, 1),
        "loss_history": [round(x, 5) for x in result.history], "parameters": count_parameters(result.model),
        "init_weights": init_record})
    print(f"srender scheduler: model ({count_parameters(result.model):,} parameters) -> {out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from srender_ros.backends.learned.predictor import DEFAULT_WEIGHTS_DIR, KeyframeCountPredictor
    from srender_ros.tooling.learned.train import count_metrics, predict_counts

    pred = KeyframeCountPredictor.from_dir(args.weights or DEFAULT_WEIGHTS_DIR)
    samples = _read_labels(args.labels)[0] if args.labels else _make_labels(args, None)
    labels = np.array([s.count for s in samples], dtype=np.float64)
    report: dict[str, Any] = {"samples": len(samples), "weights": str(args.weights or DEFAULT_WEIGHTS_DIR)}
    report["learned_with_image"] = count_metrics(predict_counts(pred.model, samples, True), labels)
    report["learned_no_image"] = count_metrics(predict_counts(pred.model, samples, False), labels)
    report["constant_median"] = count_metrics(np.full(len(labels), np.median(labels)), labels)
    for name, m in report.items():
        if isinstance(m, dict):
            print(f"  {name:<20} MAE {m['mae']:6.2f}  median factor {m['ratio_median']:.2f}  "
                  f"within 1.5x {100 * m['within_1_5']:5.1f}%  bias {m['bias']:+.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from srender_ros.backends.learned.predictor import DEFAULT_WEIGHTS_DIR, KeyframeCountPredictor
    from srender_ros.cli.render_cmd import load_image
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.resample import normalize_world_up
    from srender_ros.core.trajectory_io import load_trajectory

    pred = KeyframeCountPredictor.from_dir(args.weights or DEFAULT_WEIGHTS_DIR)
    traj = load_trajectory(args.trajectory, pose_frame=args.pose_frame, fps=args.fps)
    traj, _ = normalize_world_up(traj, args.world_up)
    K = Intrinsics.from_fov(args.width, args.height, args.fov_deg)
    image = load_image(args.image) if args.image else None
    c = pred.predict_float(traj, K, image)
    print(f"{pred.predict(traj, K, image)} keyframes (model output {c:.2f}) for {len(traj)} poses over {traj.duration_s:.1f} s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("scheduler", help="learned keyframe-count predictor: labels, train, eval, predict",
                       description="The learned keyframe-count predictor (SRENDER 3.1): oracle labels, training, evaluation.")
    s = p.add_subparsers(dest="scheduler_command", metavar="ACTION")
    s.required = True

    lab = s.add_parser("labels", help="make oracle labels (coverage scheduler on procedural worlds)")
    lab.add_argument("--out", required=True, help="label cache to write (.npz)")
    _add_label_args(lab, samples=200, seed=0)
    lab.set_defaults(func=run_labels)

    tr = s.add_parser("train", help="train the model and write weights")
    tr.add_argument("--out", required=True, help="folder for model.safetensors, config.json, training_config.json "
                    "(replaced as a whole when training ends; an interrupted run leaves it untouched)")
    tr.add_argument("--labels", action="append", default=None, help="label cache(s) to train on (repeatable; "
                    "default: make --samples new labels first, saved to OUT/labels.npz)")
    _add_label_args(tr, samples=200, seed=0)
    tr.add_argument("--epochs", type=int, default=50)
    tr.add_argument("--prefixes", type=int, default=4, help="extra samples per label from trajectory prefixes (default 4)")
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--warmup-epochs", type=int, default=10, help="linear learning-rate warm-up (default 10)")
    tr.add_argument("--init-weights", default=None, metavar="DIR",
                    help="fine-tune: start from this model folder (its architecture; e.g. the shipped weights) "
                         "instead of random weights")
    tr.add_argument("--train-seed", type=int, default=0, help="seed of initialization and shuffling")
    tr.add_argument("--appearance", choices=["cnn", "none"], default="cnn", help="appearance token source")
    tr.add_argument("--appearance-dropout", type=float, default=0.5)
    tr.add_argument("--tokens", type=int, default=32, help="pose tokens per trajectory")
    tr.add_argument("--width", type=int, default=64, help="transformer width")
    tr.add_argument("--layers", type=int, default=4)
    tr.add_argument("--heads", type=int, default=4)
    tr.set_defaults(func=run_train)

    ev = s.add_parser("eval", help="count error against held-out oracle labels")
    ev.add_argument("--weights", default=None, help="model folder (default: the shipped weights)")
    ev.add_argument("--labels", action="append", default=None, help="held-out label cache(s) (default: make new labels)")
    _add_label_args(ev, samples=40, seed=1000)
    ev.add_argument("--json", default=None, help="write the metrics here")
    ev.set_defaults(func=run_eval)

    pr = s.add_parser("predict", help="keyframe count for a trajectory file")
    pr.add_argument("--trajectory", required=True, help="trajectory file (TUM, KITTI, EuRoC CSV, Path YAML)")
    pr.add_argument("--pose-frame", choices=["optical", "body"], default=None)
    pr.add_argument("--world-up", default="+z")
    pr.add_argument("--fps", type=float, default=None)
    pr.add_argument("--width", type=int, default=320)
    pr.add_argument("--height", type=int, default=240)
    pr.add_argument("--fov-deg", type=float, default=90.0)
    pr.add_argument("--image", default=None, help="first view of the world (optional appearance input)")
    pr.add_argument("--weights", default=None, help="model folder (default: the shipped weights)")
    pr.set_defaults(func=run_predict)
