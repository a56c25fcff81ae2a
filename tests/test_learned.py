"""The learned keyframe-count predictor: training, shipped weights, invariances, bad input, caches."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from srender_ros.backends.learned.features import N_TOKEN_FEATURES, pose_tokens, token_indices, trajectory_tokens
from srender_ros.backends.learned.model import KeyframeCountModel, ModelConfig
from srender_ros.backends.learned.predictor import DEFAULT_WEIGHTS_DIR, KeyframeCountPredictor, load_default_predictor
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import make_transform, quat_wxyz_to_matrix
from srender_ros.core.trajectory import Trajectory
from srender_ros.core.trajectory_gen import make_trajectory
from srender_ros.errors import InputError, ModelLoadError, TrajectoryError
from srender_ros.tooling.learned.labels import LabelConfig, load_labels, save_labels, synthetic_samples
from srender_ros.tooling.learned.train import TrainConfig, fit, save_model

K = Intrinsics.from_fov(320, 240, 90.0)
TINY = ModelConfig(n_tokens=8, width=16, layers=2, heads=2, appearance="cnn", image_side_px=16)


def _walk(duration_s: float = 6.0, seed: int = 3) -> Trajectory:
    return make_trajectory("random_smooth", fps=10.0, duration_s=duration_s, seed=seed)


def _rigid(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=4)
    return make_transform(quat_wxyz_to_matrix(q), rng.uniform(-50, 50, 3))


def test_a_few_training_steps_make_the_loss_fall() -> None:
    samples = synthetic_samples(16, seed=0, config=LabelConfig(max_duration_s=10.0))
    assert len({s.count for s in samples}) > 3, "the synthetic labels should vary"
    result = fit(samples, TrainConfig(epochs=15, batch_size=8, lr=1e-2, warmup_epochs=1, model=TINY))
    assert len(result.history) == 15
    assert result.history[-1] < 0.5 * result.history[0], result.history


def test_saved_model_round_trips_through_safetensors(tmp_path: Path) -> None:
    model = KeyframeCountModel(TINY).eval()
    save_model(model, tmp_path, TrainConfig(epochs=1, model=TINY))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "training_config.json"]
    pred = KeyframeCountPredictor.from_dir(tmp_path)
    traj = _walk()
    image = np.random.default_rng(0).uniform(size=(24, 32, 3)).astype(np.float32)
    with torch.no_grad():
        tokens = torch.from_numpy(trajectory_tokens(traj, K, TINY.n_tokens))[None]
        from srender_ros.backends.learned.features import prepare_image

        img = torch.from_numpy(prepare_image(image, TINY.image_side_px))[None]
        expected = float(model(tokens, img, torch.ones(1, dtype=torch.bool))[0])
    assert pred.predict_float(traj, K, image) == pytest.approx(expected, rel=1e-6)
    # The image matters for a cnn model (it is not silently ignored).
    assert pred.predict_float(traj, K, image) != pred.predict_float(traj, K, None)


def test_shipped_weights_are_safetensors_and_predict_deterministically() -> None:
    files = sorted(p.name for p in DEFAULT_WEIGHTS_DIR.iterdir())
    assert files == ["config.json", "model.safetensors", "training_config.json"]
    raw = (DEFAULT_WEIGHTS_DIR / "model.safetensors").read_bytes()
    # safetensors layout: u64 little-endian header length, then a JSON header; no pickle opcodes.
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"]["format"] == "srender-keyframe-count-v1"
    assert len(raw) < 2 * 1024 * 1024
    training = json.loads((DEFAULT_WEIGHTS_DIR / "training_config.json").read_text())
    assert isinstance(training["train"]["seed"], int) and training["labels"], "weights must record seeds and labels"
    # Real oracle labels, not a placeholder: every label file is named with its checksum, its
    # seed, the oracle's configuration and the source version that made it.
    assert "placeholder" not in json.dumps(training).lower()
    assert training["command"].startswith("srender scheduler train ") and training["source_version"]
    for src in training["labels"]:
        assert src["file"].endswith(".npz") and "synthetic" not in src["file"], src["file"]
        assert re.fullmatch(r"[0-9a-f]{64}", src["sha256"])
        assert isinstance(src["seed"], int) and src["source_version"]
        assert src["oracle_pipeline_config"]["scheduler"] == "coverage"
        assert src["label_config"]["coverage_threshold"] == LabelConfig().coverage_threshold
    # Fine-tuned weights (`--init-weights`) carry the record of the weights they started from.
    init_labels = ((training.get("init_weights") or {}).get("training_config") or {}).get("labels", [])
    assert sum(src["samples"] for src in training["labels"] + init_labels) >= 500
    assert training["train"]["epochs"] >= 20 and training["final_loss"] < 2.0

    pred = load_default_predictor()
    traj = make_trajectory("walk", fps=30.0, duration_s=20.0, seed=1)
    counts = [pred.predict_float(traj, K) for _ in range(3)]
    assert counts[0] == counts[1] == counts[2]
    assert 1 <= pred(traj, K) <= pred.config.max_keyframes
    assert pred(traj, K) == KeyframeCountPredictor.from_dir(DEFAULT_WEIGHTS_DIR)(traj, K)


def test_more_motion_needs_more_keyframes() -> None:
    pred = load_default_predictor()
    still = make_trajectory("handheld", fps=10.0, duration_s=10.0, seed=0, amplitude_m=0.01, rotation_deg=0.5)
    drive = make_trajectory("car", fps=10.0, duration_s=10.0, seed=0, speed_mps=10.0)
    assert pred.predict_float(still, K) < pred.predict_float(drive, K)


@pytest.mark.parametrize("seed", [0, 1])
def test_prediction_is_invariant_to_a_rigid_transform_and_a_time_offset(seed: int) -> None:
    pred = load_default_predictor()
    traj = make_trajectory("drone", fps=10.0, duration_s=12.0, seed=seed)
    G = _rigid(seed)
    moved = Trajectory(traj.stamps_ns, G[None] @ traj.T_world_cam)
    shifted = Trajectory(traj.stamps_ns + 1_700_000_000_123_456_789, traj.T_world_cam)
    base = pred.predict_float(traj, K)
    assert pred.predict_float(moved, K) == pytest.approx(base, abs=1e-3)
    assert pred.predict_float(shifted, K) == pytest.approx(base, abs=1e-6)
    assert pred(moved, K) == pred(shifted, K) == pred(traj, K)
    # The features themselves are what is invariant (the model never sees absolute poses).
    np.testing.assert_allclose(trajectory_tokens(moved, K), trajectory_tokens(traj, K), atol=1e-4)


def test_tokens_shape_and_resampling() -> None:
    assert token_indices(1, 4).tolist() == [0, 0, 0, 0]
    assert token_indices(600, 4).tolist() == [0, 200, 399, 599]
    one = make_trajectory("pan", fps=10.0, duration_s=0.1)
    assert len(one) == 1
    tok = trajectory_tokens(one, K, 8)
    assert tok.shape == (8, N_TOKEN_FEATURES) and np.isfinite(tok).all()
    long = make_trajectory("car", fps=30.0, duration_s=60.0)
    assert trajectory_tokens(long, K, 32).shape == (32, N_TOKEN_FEATURES)


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(TrajectoryError, match="empty"):
        pose_tokens(np.zeros(0, np.int64), np.zeros((0, 4, 4)), K)
    with pytest.raises(TrajectoryError, match="empty"):
        Trajectory(np.zeros(0, np.int64), np.zeros((0, 4, 4)))
    with pytest.raises(TrajectoryError, match="stamps"):
        pose_tokens(np.array([5, 5]), np.stack([np.eye(4)] * 2), K)
    with pytest.raises(TrajectoryError, match="NaN"):
        pose_tokens(np.array([0, 1]), np.full((2, 4, 4), np.nan), K)
    pred = load_default_predictor()
    with pytest.raises(TrajectoryError):
        pred(np.zeros((0, 4, 4)), K)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="appearance image"):
        pred.predict(_walk(), K, np.zeros((4, 4)))


def test_save_model_replaces_the_folder_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "weights"
    save_model(KeyframeCountModel(TINY), out, TrainConfig(epochs=1, model=TINY), extra={"run": 1})
    (out / "stale.txt").write_text("from an older run")
    (out / "labels.npz").write_bytes(b"kept")
    save_model(KeyframeCountModel(TINY), out, TrainConfig(epochs=2, model=TINY), extra={"run": 2}, keep=["labels.npz"])
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "labels.npz", "model.safetensors",
                                                    "training_config.json"]
    assert json.loads((out / "training_config.json").read_text())["run"] == 2
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    # A run that dies while writing (here: after the new weights, at training_config.json) leaves
    # the previous folder complete and no temporary folders.
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainConfig, "to_json", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(KeyframeCountModel(TINY), out, TrainConfig(epochs=3, model=TINY), extra={"run": 3})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["weights"]
    KeyframeCountPredictor.from_dir(out)


def test_broken_model_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"config\.json is missing"):
        KeyframeCountPredictor.from_dir(tmp_path)
    save_model(KeyframeCountModel(TINY), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "width": 32}))
    with pytest.raises(ModelLoadError, match="do not load"):
        KeyframeCountPredictor.from_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "colour": 1}))
    with pytest.raises(ModelLoadError, match="unknown model config keys"):
        KeyframeCountPredictor.from_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ModelLoadError, match=r"model\.safetensors"):
        KeyframeCountPredictor.from_dir(tmp_path)


def test_label_cache_round_trip_and_corruption(tmp_path: Path) -> None:
    cfg = LabelConfig(max_duration_s=5.0)
    samples = synthetic_samples(5, seed=2, config=cfg)
    path = tmp_path / "labels.npz"
    save_labels(samples, path, cfg, extra={"note": "test"})
    back, meta = load_labels(path)
    assert meta["extra"] == {"note": "test"} and meta["label_config"]["coverage_threshold"] == cfg.coverage_threshold
    assert [s.count for s in back] == [s.count for s in samples]
    for a, b in zip(back, samples):
        np.testing.assert_array_equal(a.trajectory.stamps_ns, b.trajectory.stamps_ns)
        np.testing.assert_array_equal(a.trajectory.T_world_cam, b.trajectory.T_world_cam)
        assert a.spec == b.spec and a.intrinsics == b.intrinsics
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match=r"labels\.npz"):
        load_labels(path)
    with pytest.raises(InputError, match="does not exist"):
        load_labels(tmp_path / "missing.npz")


def test_dinov2_class_token_from_a_local_folder(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                    image_size=28, patch_size=14)
    transformers.Dinov2Model(cfg).save_pretrained(tmp_path / "dino")
    mcfg = ModelConfig(n_tokens=8, width=16, layers=1, heads=2, appearance="dinov2", appearance_dim=32)
    save_model(KeyframeCountModel(mcfg), tmp_path / "model")
    pred = KeyframeCountPredictor.from_dir(tmp_path / "model", dinov2_dir=tmp_path / "dino")
    assert pred.dinov2 is not None and pred.dinov2.hidden_size == 32
    image = np.random.default_rng(1).uniform(size=(40, 50, 3))
    assert pred.dinov2(image).shape == (32,)
    assert pred.predict_float(_walk(), K, image) != pred.predict_float(_walk(), K, None)
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        KeyframeCountPredictor.from_dir(tmp_path / "model", dinov2_dir=tmp_path)


def test_oracle_labels_match_a_real_pipeline_run_and_learned_scheduler_runs(tmp_path: Path) -> None:
    from srender_ros.app.compose import AppConfig, build_pipeline
    from srender_ros.backends.generators.registry import make_generator
    from srender_ros.backends.render.registry import get_renderer
    from srender_ros.core.store import WorldStore
    from srender_ros.engine.pipeline import Pipeline, PipelineConfig, RenderJob
    from srender_ros.engine.scheduler import SchedulerKind, uniform_indices
    from srender_ros.tooling.learned.labels import LabelSpec, label_pipeline_config, oracle_label, spec_trajectory

    cfg = LabelConfig(width_px=32, height_px=24)
    spec = LabelSpec("car", "room", 3.0, 0, {"speed_mps": 2.0, "height_m": 0.8, "max_curvature_per_m": 0.2})
    renderer, generator = get_renderer("cpu"), make_generator("procedural", supersample=1)
    label = oracle_label(spec, cfg, tmp_path / "label", renderer, generator)
    # The label run skips drawing frames; its decisions equal a full Pipeline.run with the same config.
    traj = spec_trajectory(spec, cfg.fps)
    full = Pipeline(WorldStore(tmp_path / "full"), renderer, generator, label_pipeline_config(cfg))
    run = full.run(RenderJob(spec.prompt, traj, cfg.intrinsics))
    frames = sum(len(c.indices) for c in run)
    assert frames == len(traj) == len(label.trajectory)
    assert label.count > 1 and list(label.keyframe_indices) == run.schedule.keyframe_indices
    assert label.image is not None and label.image.shape == (64, 64, 3) and label.image.std() > 0

    # scheduler=learned makes the first keyframe, predicts the count from the path and the camera's
    # view of that keyframe (the shipped weights), plans it uniformly, and coverage may add more.
    cam = cfg.intrinsics
    learned = build_pipeline(AppConfig(pipeline=PipelineConfig(scheduler=SchedulerKind.LEARNED, coverage_scale=0.5)),
                             store=WorldStore(tmp_path / "learned"), renderer=renderer, generator=generator)
    run = learned.run(RenderJob(spec.prompt, traj, cam))
    assert sum(len(c.indices) for c in run) == len(traj)
    first_view = generator.ground_truth(spec.prompt, cam, traj.T_world_cam[:1]).rgb[0]
    expected = load_default_predictor()(traj, cam, first_view)
    assert run.schedule.predicted_count == expected
    assert set(uniform_indices(len(traj), expected)) <= set(run.schedule.keyframe_indices)
    assert run.schedule.keyframe_indices.count(0) == 1


def test_learned_scheduler_predicts_from_the_first_keyframes_camera_view(tmp_path: Path) -> None:
    """The first keyframe is made before the prediction, and the predictor sees exactly the
    camera's view of it (the overscanned keyframe cropped back to the camera)."""
    from srender_ros.backends.generators.registry import make_generator
    from srender_ros.backends.render.registry import get_renderer
    from srender_ros.core.store import WorldStore
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.engine.pipeline import Pipeline, PipelineConfig, RenderJob
    from srender_ros.engine.scheduler import SchedulerKind

    seen: list[np.ndarray | None] = []

    def predictor(traj: object, cam: Intrinsics, image: np.ndarray | None) -> int:
        seen.append(None if image is None else np.array(image))
        return 4

    cam = Intrinsics.from_fov(64, 48, 90.0)   # overscan 1.25: 80x60, the camera's view at offset (8, 6)
    traj = make_trajectory("orbit", fps=10.0, duration_s=3.0, seed=0)
    gen = make_generator("procedural", supersample=1)
    pipe = Pipeline(WorldStore(tmp_path), get_renderer("cpu"), gen,
                    PipelineConfig(scheduler=SchedulerKind.LEARNED, chunk_size=10), count_predictor=predictor)
    run = pipe.run(RenderJob("a kitchen", traj, cam))
    for _ in run:
        pass
    assert len(seen) == 1 and seen[0] is not None
    truth = gen.ground_truth("a kitchen", cam, traj.T_world_cam[:1]).rgb[0]  # type: ignore[attr-defined]
    np.testing.assert_allclose(seen[0], truth, atol=1e-5)
    assert run.schedule.predicted_count == 4
    assert {0, 10, 19, 29} <= set(run.schedule.keyframe_indices)


def test_camera_view_crops_an_overscanned_keyframe_exactly() -> None:
    from srender_ros.backends.generators.registry import make_generator
    from srender_ros.core.camera import crop_to_camera

    gen = make_generator("procedural", supersample=1)
    T = np.eye(4)   # optical camera 1.5 m up, looking along +x (level), at a textured field
    T[:3, :3] = [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]
    T[2, 3] = 1.5
    for cam in (Intrinsics.from_fov(64, 48, 90.0), Intrinsics.from_fov(48, 36, 90.0)):  # margins 8x6 and 6x4.5 px
        K = cam.overscanned(1.25)
        wide = gen.ground_truth("a field", K, T[None]).rgb[0]  # type: ignore[attr-defined]
        view = crop_to_camera(wide, K, cam)
        truth = gen.ground_truth("a field", cam, T[None]).rgb[0]  # type: ignore[attr-defined]
        assert view.shape == truth.shape
        err = np.abs(view - truth).mean()
        # Integer margins crop exactly; a 4.5 px margin is interpolated (a plain crop half a pixel off
        # is 0.033-0.040 on this aliased texture, the interpolation 0.028).
        assert err < (1e-5 if K.cy_px - cam.cy_px == int(K.cy_px - cam.cy_px) else 0.03), err


def test_fine_tuning_starts_from_the_given_weights() -> None:
    samples = synthetic_samples(12, seed=1, config=LabelConfig(max_duration_s=10.0))
    first = fit(samples, TrainConfig(epochs=8, batch_size=8, lr=1e-2, warmup_epochs=1, model=TINY)).model
    state = {k: v.clone() for k, v in first.state_dict().items()}
    # A vanishing learning rate keeps the weights where they started: the initial ones, not random ones.
    tuned = fit(samples, TrainConfig(epochs=1, batch_size=8, lr=1e-12, warmup_epochs=0, model=TINY), init=first).model
    for k, v in tuned.state_dict().items():
        assert torch.allclose(v, state[k], atol=1e-6), k
    assert all(torch.equal(v, state[k]) for k, v in first.state_dict().items()), "the initial model must stay unchanged"
    # Fine-tuning with a real rate starts at the initial model's loss (well below a fresh model's).
    fresh = fit(samples, TrainConfig(epochs=1, batch_size=8, lr=1e-3, warmup_epochs=0, model=TINY))
    again = fit(samples, TrainConfig(epochs=1, batch_size=8, lr=1e-3, warmup_epochs=0, model=TINY), init=first)
    assert again.history[0] < fresh.history[0]
    with pytest.raises(InputError, match="architecture"):
        fit(samples, TrainConfig(epochs=1, model=ModelConfig(n_tokens=8, width=32, layers=2, heads=2)), init=first)


def test_scheduler_train_cli_fine_tunes_and_records_the_initial_weights(tmp_path: Path) -> None:
    from srender_ros.cli.main import main as cli_main

    labels = tmp_path / "labels.npz"
    save_labels(synthetic_samples(8, seed=2, config=LabelConfig(max_duration_s=8.0)), labels, LabelConfig())
    first, tuned = tmp_path / "first", tmp_path / "tuned"
    base = ["scheduler", "train", "--labels", str(labels), "--epochs", "2", "--prefixes", "0", "--tokens", "8",
            "--width", "16", "--layers", "2", "--heads", "2"]
    assert cli_main(base + ["--out", str(first)]) == 0
    assert cli_main(["scheduler", "train", "--labels", str(labels), "--epochs", "1", "--prefixes", "0",
                     "--warmup-epochs", "0", "--init-weights", str(first), "--out", str(tuned)]) == 0
    record = json.loads((tuned / "training_config.json").read_text())
    assert record["init_weights"]["folder"] == str(first)
    assert record["init_weights"]["training_config"]["labels"][0]["file"] == "labels.npz"
    assert json.loads((tuned / "config.json").read_text()) == json.loads((first / "config.json").read_text())
    KeyframeCountPredictor.from_dir(tuned)
