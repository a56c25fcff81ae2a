"""`srender world ...`: import, export, list, info, rm through the real CLI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srender_ros.cli.main import main
from srender_ros.core.ply import read_ply, write_ply
from srender_ros.core.store import WorldStore, world_id_for_prompt
from srender_ros.core.world import GaussianWorld

PROMPT = "a cluttered warehouse aisle"
REPO = Path(__file__).resolve().parents[1]


def make_ply(path: Path, n: int = 25, sh_degree: int = 1) -> GaussianWorld:
    rng = np.random.default_rng(n)
    w = GaussianWorld(rng.normal(size=(n, 3)), rng.normal(size=(n, 4)), rng.normal(-3, 1, size=(n, 3)), rng.normal(size=n),
                      rng.normal(size=(n, (sh_degree + 1) ** 2, 3)))
    write_ply(path, w)
    return w


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_import_list_info_export_rm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    worlds = str(tmp_path / "worlds")
    src = tmp_path / "scene.ply"
    w = make_ply(src)
    rc, out, _ = run(capsys, "world", "import", str(src), "--prompt", PROMPT, "--world-dir", worlds)
    wid = world_id_for_prompt(PROMPT)
    assert rc == 0 and "imported 25 Gaussians (SH degree 1)" in out and wid in out

    rc, out, _ = run(capsys, "world", "list", "--world-dir", worlds)
    lines = out.splitlines()
    assert rc == 0 and lines[0].startswith("1 world(s) in")
    assert lines[1].split()[:4] == ["ID", "GAUSSIANS", "KEYFRAMES", "SIZE"]
    assert lines[2].split()[:3] == [wid, "25", "0"] and lines[2].endswith(PROMPT)

    rc, out, _ = run(capsys, "world", "info", "--prompt", "  A Cluttered Warehouse Aisle ", "--world-dir", worlds)
    assert rc == 0
    fields = dict(line.strip().split(": ", 1) for line in out.splitlines())
    assert fields["id"] == wid and fields["gaussians"] == "25" and fields["sh degree"] == "1"
    assert fields["checksums"] == "ok" and fields["generator"] == "import"

    out_ply = tmp_path / "exported.ply"
    rc, out, _ = run(capsys, "world", "export", "--id", wid, "--world-dir", worlds, "--out", str(out_ply))
    assert rc == 0 and str(out_ply) in out
    back = read_ply(out_ply)  # the same Gaussians (streamed cell by cell, so grouped by cell)
    order_b, order_w = np.lexsort(back.means.T), np.lexsort(w.means.T)
    assert back.sh[order_b].tobytes() == w.sh[order_w].tobytes()
    assert back.means[order_b].tobytes() == w.means[order_w].tobytes()

    rc, out, _ = run(capsys, "world", "rm", "--prompt", PROMPT, "--world-dir", worlds)
    assert rc == 0 and f"removed world {wid}" in out
    rc, out, _ = run(capsys, "world", "list", "--world-dir", worlds)
    assert rc == 0 and out.startswith("no worlds in")


def test_errors_are_one_line_and_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    worlds = str(tmp_path / "worlds")
    cases = [
        (["world", "import", str(tmp_path / "none.ply"), "--prompt", PROMPT], "none.ply: no such file"),
        (["world", "export", "--prompt", PROMPT, "--out", str(tmp_path / "o.ply")], "no world for prompt"),
        (["world", "info", "--id", "0123456789abcdef"], "no world with id 0123456789abcdef"),
        (["world", "rm", "--id", "not-an-id"], "expected 16 hex digits"),
    ]
    for argv, message in cases:
        rc, _out, err = run(capsys, *argv, "--world-dir", worlds)
        assert rc == 2, argv
        assert err.count("\n") == 1 and err.startswith("srender world: error:") and message in err, err


def test_damaged_world_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    worlds = tmp_path / "worlds"
    make_ply(tmp_path / "a.ply")
    assert run(capsys, "world", "import", str(tmp_path / "a.ply"), "--prompt", PROMPT, "--world-dir", str(worlds))[0] == 0
    ply_path = next((WorldStore(worlds).world_dir(world_id_for_prompt(PROMPT)) / "cells").glob("c_*.ply"))
    ply_path.write_bytes(ply_path.read_bytes()[:-8])
    rc, _, err = run(capsys, "world", "info", "--prompt", PROMPT, "--world-dir", str(worlds))
    assert rc == 2 and ply_path.name in err and "truncated" in err
    rc, out, _ = run(capsys, "world", "info", "--prompt", PROMPT, "--world-dir", str(worlds), "--no-verify")
    assert rc == 0 and "not checked" in out
    (ply_path.parent.parent / "manifest.json").write_text("{")
    rc, out, _ = run(capsys, "world", "list", "--world-dir", str(worlds))
    assert rc == 0 and "DAMAGED" in out and "corrupt JSON" in out


def test_world_dir_from_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRENDER_WORLD_DIR", str(tmp_path / "env"))
    make_ply(tmp_path / "a.ply", n=4)
    assert run(capsys, "world", "import", str(tmp_path / "a.ply"), "--prompt", PROMPT)[0] == 0
    assert (tmp_path / "env" / f"w-{world_id_for_prompt(PROMPT)}" / "manifest.json").is_file()
    rc, out, _ = run(capsys, "world", "list")
    assert rc == 0 and PROMPT in out


def test_installed_srender_world_list(tmp_path: Path) -> None:
    exe = REPO / ".venv" / "bin" / "srender"
    if not exe.exists():
        pytest.skip(".venv/bin/srender not installed (run `make setup`)")
    worlds = tmp_path / "worlds"
    make_ply(tmp_path / "a.ply", n=6)
    WorldStore(worlds).import_ply(tmp_path / "a.ply", PROMPT)
    env = dict(os.environ, SRENDER_WORLD_DIR=str(worlds))
    proc = subprocess.run([str(exe), "world", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert world_id_for_prompt(PROMPT) in proc.stdout and PROMPT in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "srender_ros.cli.main", "world", "rm", "--prompt", "never stored"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "no world for prompt" in proc.stderr and "Traceback" not in proc.stderr
