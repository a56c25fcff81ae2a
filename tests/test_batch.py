"""`srender batch`: jobs file checks, one job's atomic outputs, and whole batches on a local Ray cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

from srender_ros.batch.jobs import load_jobs, parse_jobs
from srender_ros.batch.run_job import run_job
from srender_ros.errors import InputError

WALK = {"builtin": "walk", "duration_s": 1.0, "fps": 5}


def _srender(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "srender_ros.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO_ROOT)


@pytest.mark.parametrize("jobs, match", [
    ([], "non-empty list"),
    ([{"prompt": "x"}], r"job #0: field 'trajectory' is missing"),
    ([{"trajectory": WALK}], r"job #0: field 'prompt' is missing"),
    ([{"prompt": "x", "trajectory": WALK}, {"prompt": "y", "trajectory": WALK, "colour": 1}],
     r"job #1: unknown field\(s\) \['colour'\]"),
    ([{"prompt": "x", "trajectory": "missing.tum"}], r"job #0: field 'trajectory': no such file"),
    ([{"prompt": "x", "trajectory": WALK, "width": "wide"}], r"job #0: field 'width': expected an integer"),
    ([{"prompt": "x", "trajectory": WALK, "scheduler": "magic"}], r"field 'scheduler': 'magic' is not one of"),
    ([{"prompt": "x", "trajectory": {"builtin": "walk", "speed_mps": -1}}], r"job #0: field 'trajectory'"),
    ([{"name": "a/b", "prompt": "x", "trajectory": WALK}], r"field 'name' must be"),
    ([{"name": "a", "prompt": "x", "trajectory": WALK}, {"name": "a", "prompt": "x", "trajectory": WALK}],
     r"job #1 \('a'\): field 'name' 'a' is used by an earlier job"),
    ([{"prompt": "x", "trajectory": WALK, "generator": "diffusers"}], r"job #0: .*--model"),
])
def test_bad_jobs_are_refused_naming_job_and_field(jobs: list[dict[str, object]], match: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=match):
        parse_jobs(jobs, tmp_path)


def test_jobs_file_with_defaults_and_trajectory_file(tmp_path: Path) -> None:
    (tmp_path / "path.tum").write_text("0.0 0 0 1.5 0 0 0 1\n0.1 0.1 0 1.5 0 0 0 1\n0.2 0.2 0 1.5 0 0 0 1\n")
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump({
        "defaults": {"width": 48, "height": 32},
        "jobs": [{"name": "a", "prompt": "p", "trajectory": "path.tum", "format": "tum", "seed": 4},
                 {"prompt": "q", "trajectory": WALK, "height": 40}]}))
    a, b = load_jobs(tmp_path / "jobs.yaml")
    assert (a.name, a.args.width, a.args.height, a.args.seed, a.args.trajectory_format, len(a.trajectory)) == \
        ("a", 48, 32, 4, "tum", 3)
    assert (b.name, b.args.height, b.args.scheduler) == ("job-001", 40, "coverage")


def test_run_job_publishes_a_complete_folder_or_nothing(tmp_path: Path) -> None:
    good, bad = parse_jobs([{"name": "good", "prompt": "a tiny room", "trajectory": WALK, "width": 32, "height": 24},
                            {"name": "bad", "prompt": "a tiny room", "trajectory": WALK, "width": 32, "height": 24,
                             "image": "jobs.txt"}], _with_file(tmp_path / "jobs.txt"))
    out = tmp_path / "out"
    rec = run_job(good, str(out), str(tmp_path / "worlds"))
    assert rec["status"] == "ok", rec
    metrics = json.loads((out / "good" / "metrics.json").read_text())
    assert metrics["frames"] == rec["frames"] == 5
    assert len(list((out / "good" / "frames").glob("*.png"))) == 5
    rec = run_job(bad, str(out), str(tmp_path / "worlds"))
    assert rec["status"] == "failed" and "not a readable image" in rec["error"]
    assert sorted(p.name for p in out.iterdir()) == ["good"], "no partial folder of the failed job"


def _with_file(path: Path) -> Path:
    path.write_text("not an image")
    return path.parent


def test_batch_on_a_local_ray_cluster(tmp_path: Path) -> None:
    (tmp_path / "not-an-image.png").write_text("x")
    jobs = {"defaults": {"width": 32, "height": 24},
            "jobs": [{"name": "first", "prompt": "a tiny room", "trajectory": WALK},
                     {"name": "again", "prompt": "a tiny room", "trajectory": WALK},
                     {"name": "other", "prompt": "a tiny garden", "trajectory": WALK},
                     {"name": "broken", "prompt": "a tiny garden", "trajectory": WALK, "image": "not-an-image.png"}]}
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(jobs))
    out = tmp_path / "out"
    r = _srender("batch", "--jobs", str(tmp_path / "jobs.yaml"), "--out", str(out), "--world-dir",
                 str(tmp_path / "worlds"), "--workers", "2", "--no-progress")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 of 4 jobs failed: broken" in r.stdout
    records = {rec["name"]: rec for rec in json.loads((out / "summary.json").read_text())["jobs"]}
    assert [records[n]["status"] for n in ("first", "again", "other", "broken")] == ["ok", "ok", "ok", "failed"]
    assert records["first"]["keyframes"] >= 1
    assert records["again"]["keyframes"] == 0, "the second job of a world finds it covered: keyframes made once"
    for name in ("first", "again", "other"):
        assert (out / name / "metrics.json").is_file() and len(list((out / name / "frames").glob("*.png"))) == 5
    assert not (out / "broken").exists()
    for line in ("first", "again", "other", "broken"):
        assert line in r.stdout


def test_unreachable_address_is_one_line_and_nonzero(tmp_path: Path) -> None:
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump([{"prompt": "x", "trajectory": WALK}]))
    r = _srender("batch", "--jobs", str(tmp_path / "jobs.yaml"), "--out", str(tmp_path / "out"),
                 "--address", "127.0.0.1:9", timeout=60)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "cannot reach the Ray cluster at 127.0.0.1:9" in r.stderr
    assert not (tmp_path / "out").exists()


def test_bad_jobs_file_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump([{"prompt": "x", "trajectory": WALK},
                                                        {"prompt": "y", "trajectory": WALK, "widht": 3}]))
    r = _srender("batch", "--jobs", str(tmp_path / "jobs.yaml"), "--out", str(tmp_path / "out"), timeout=60)
    assert r.returncode == 2 and "job #1: unknown field(s) ['widht']" in r.stderr
    assert not (tmp_path / "out").exists()
