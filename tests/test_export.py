"""`srender world export --format ...`: PLY (lossless), SPZ, compressed PLY and USD, read back with their own readers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from srender_ros.backends.export import EXPORTERS, format_for_path, get_exporter
from srender_ros.cli.main import main
from srender_ros.core.cell_store import STORAGE_CELL_SIZE_M
from srender_ros.core.cells import CellGrid
from srender_ros.core.ply import read_ply
from srender_ros.core.store import WorldStore, world_id_for_prompt
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import BackendUnavailableError, InputError

PROMPT = "an export test yard"


def world(n: int = 300, degree: int = 1, seed: int = 0) -> GaussianWorld:
    rng = np.random.default_rng(seed)
    w = GaussianWorld(rng.uniform(-5, 5, size=(n, 3)), rng.normal(size=(n, 4)), rng.normal(-3, 0.5, size=(n, 3)),
                      rng.normal(size=n), rng.normal(size=(n, (degree + 1) ** 2, 3)) * 0.3)
    # In the order a world stored by cells reloads (grouped by storage cell), so arrays compare exactly.
    return w.select(np.concatenate(list(CellGrid(STORAGE_CELL_SIZE_M).group(w.means).values())))


def saved(root: Path, w: GaussianWorld) -> None:
    store = WorldStore(root)
    state = store.get_or_create(PROMPT)
    state.replace_world(w)
    store.save(state)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_format_from_extension() -> None:
    assert format_for_path("a.ply") == "ply" and format_for_path("a.compressed.ply") == "compressed-ply"
    assert format_for_path("a.spz") == "spz" and format_for_path("A.USDZ") == "usd" and format_for_path("a.usda") == "usd"
    assert format_for_path("a.bin") == "ply"
    with pytest.raises(InputError, match="known: ply, spz"):
        get_exporter("obj")


def test_ply_round_trip_through_the_cli_is_lossless(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = world(degree=3)
    saved(tmp_path / "worlds", w)
    out = tmp_path / "out.ply"
    rc, text, _ = run(capsys, "world", "export", "--prompt", PROMPT, "--world-dir", str(tmp_path / "worlds"),
                      "--format", "ply", "--out", str(out))
    assert rc == 0 and str(out) in text
    back = read_ply(out)
    for f in ("means", "quats_wxyz", "log_scales", "opacity_logits", "sh"):
        assert getattr(back, f).tobytes() == getattr(w, f).tobytes(), f


@pytest.mark.parametrize("name", ["w.usda", "w.usd", "w.usdz"])
def test_usd_opens_with_pxr_and_holds_the_world(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    pytest.importorskip("pxr")
    from pxr import Usd, UsdGeom

    from srender_ros.backends.export.usd import PRIM_PATH, read_usd_arrays

    w = world(degree=2)
    saved(tmp_path / "worlds", w)
    out = tmp_path / name
    rc, text, _ = run(capsys, "world", "export", "--id", world_id_for_prompt(PROMPT), "--world-dir",
                      str(tmp_path / "worlds"), "--out", str(out))
    assert rc == 0 and "as usd" in text and out.stat().st_size > 0
    stage = Usd.Stage.Open(str(out))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetPrimAtPath(PRIM_PATH).GetTypeName() == "ParticleField3DGaussianSplat"
    a = read_usd_arrays(out)
    np.testing.assert_array_equal(a["positions"], w.means)
    np.testing.assert_allclose(a["orientations_wxyz"], w.quats_wxyz, atol=1e-6)
    np.testing.assert_allclose(np.log(a["scales"]), w.log_scales, atol=1e-5)
    np.testing.assert_allclose(a["opacities"], 1 / (1 + np.exp(-w.opacity_logits)), atol=1e-6)
    np.testing.assert_array_equal(a["sh"], w.sh)
    assert int(a["degree"]) == 2


def test_spz_and_compressed_ply_read_back_within_their_quantization(tmp_path: Path) -> None:
    gsply = pytest.importorskip("gsply")
    w = world(degree=1)
    spz = get_exporter("spz").write(w, tmp_path / "w.spz")
    d = gsply.read_spz(spz)
    np.testing.assert_allclose(d.means, w.means, atol=1e-3)  # 12 fractional bits
    np.testing.assert_allclose(d.scales, w.log_scales, atol=0.05)  # 8 bits over log-scale
    np.testing.assert_allclose(d.sh0, w.sh[:, 0], atol=0.05)
    cply = get_exporter("compressed-ply").write(w, tmp_path / "w.compressed.ply")
    c = gsply.plyread(cply)
    extent = w.means.max(0) - w.means.min(0)
    assert np.abs(c.means - w.means).max() < 2e-3 * extent.max()  # 11/10 bits per chunk bounds
    ply = get_exporter("ply").write(w, tmp_path / "w.ply")
    assert spz.stat().st_size < ply.stat().st_size / 3 and cply.stat().st_size < ply.stat().st_size / 3
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left


def test_missing_package_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    saved(tmp_path / "worlds", world())
    monkeypatch.setitem(sys.modules, "pxr", None)  # as if usd-core were not installed
    rc, _, err = run(capsys, "world", "export", "--prompt", PROMPT, "--world-dir", str(tmp_path / "worlds"),
                     "--out", str(tmp_path / "w.usd"))
    assert rc == 2 and "usd-core" in err and "pip install" in err
    assert not (tmp_path / "w.usd").exists()
    with pytest.raises(BackendUnavailableError, match="gsply"):
        monkeypatch.setitem(sys.modules, "gsply", None)
        EXPORTERS["spz"].write(world(), tmp_path / "w.spz")


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "world", "export", "--prompt", "nowhere", "--world-dir", str(tmp_path), "--format", "spz",
                     "--out", str(tmp_path / "x.spz"))
    assert rc == 2 and "srender world list" in err
    with pytest.raises(InputError, match="no Gaussians"):
        get_exporter("usd").write(GaussianWorld.empty(), tmp_path / "e.usda")
    with pytest.raises(InputError, match="is a directory"):
        get_exporter("usd").write(world(), tmp_path)
