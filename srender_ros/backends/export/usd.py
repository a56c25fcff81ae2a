"""OpenUSD export for Isaac Sim: one ``UsdVol.ParticleField3DGaussianSplat`` prim (OpenUSD 26+).

Written with Pixar's ``pxr`` (PyPI ``usd-core``), following the layout of NVIDIA's gsplat2USD
converter (which cannot be installed beside our numpy: it pins numpy==2.3.1):

- ``positions`` point3f[] metres; ``scales`` float3[] *linear* standard deviations (exp of our
  log-scales); ``orientations`` quatf[] (normalized); ``opacities`` float[] in (0, 1) (sigmoid of
  the logits);
- ``radiance:sphericalHarmonicsDegree`` int and ``radiance:sphericalHarmonicsCoefficients``
  float3[] with elementSize K = (degree + 1)², coefficient-major per Gaussian (DC first), vertex
  interpolation; ``primvars:displayColor`` the DC colour for viewers without splat support;
- stage up axis Z (srender worlds are +z up, ROS convention), metersPerUnit 1; ``extent`` set.

The file extension picks the encoding: ``.usda`` text, ``.usdc``/``.usd`` binary crate, ``.usdz``
a zip package of a crate layer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from srender_ros.core.world import GaussianWorld, sh_dc_to_rgb

PRIM_PATH = "/World/GaussianSplat"


def write_usd(world: GaussianWorld, path: Path, prim_path: str = PRIM_PATH) -> None:
    """Write ``world`` as a USD stage at ``path`` (.usd, .usda, .usdc or .usdz)."""
    from pxr import Sdf, Usd, UsdGeom, UsdUtils, UsdVol, Vt

    path = Path(path)
    if path.suffix.lower() == ".usdz":
        with tempfile.TemporaryDirectory(prefix="srender-usdz-") as tmp:
            layer = Path(tmp) / "world.usdc"
            write_usd(world, layer, prim_path)
            if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(layer)), str(path)):
                raise OSError(f"{path}: packaging the USDZ failed")
        return

    layer = Sdf.Layer.CreateNew(str(path))  # .usd defaults to the binary crate encoding
    if layer is None:
        raise OSError(f"{path}: cannot create a USD layer")
    stage = Usd.Stage.Open(layer)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdGeom.Xform.Define(stage, Sdf.Path(prim_path).GetParentPath())
    splat = UsdVol.ParticleField3DGaussianSplat.Define(stage, prim_path)
    stage.SetDefaultPrim(stage.GetPrimAtPath(Sdf.Path(prim_path).GetParentPath()))

    n = len(world)
    means = np.ascontiguousarray(world.means, dtype=np.float32)
    q = world.quats_wxyz / np.linalg.norm(world.quats_wxyz, axis=1, keepdims=True)
    # Gf.Quatf stores (x, y, z, w) in memory: reorder from our (w, x, y, z).
    quats_xyzw = np.ascontiguousarray(q[:, [1, 2, 3, 0]], dtype=np.float32)
    scales = np.exp(world.log_scales.astype(np.float64)).astype(np.float32)
    opacities = (1.0 / (1.0 + np.exp(-world.opacity_logits.astype(np.float64)))).astype(np.float32)
    k = world.sh.shape[1]
    sh = np.ascontiguousarray(world.sh.reshape(n * k, 3), dtype=np.float32)

    splat.CreatePositionsAttr(Vt.Vec3fArray.FromNumpy(means))
    splat.CreateOrientationsAttr(Vt.QuatfArray.FromNumpy(quats_xyzw))
    splat.CreateScalesAttr(Vt.Vec3fArray.FromNumpy(scales))
    splat.CreateOpacitiesAttr(Vt.FloatArray.FromNumpy(opacities))
    splat.CreateRadianceSphericalHarmonicsDegreeAttr(int(world.sh_degree))
    sh_attr = splat.CreateRadianceSphericalHarmonicsCoefficientsAttr(Vt.Vec3fArray.FromNumpy(sh))
    primvar = UsdGeom.Primvar(sh_attr)
    primvar.SetElementSize(k)
    primvar.SetInterpolation(UsdGeom.Tokens.vertex)
    colour = np.clip(sh_dc_to_rgb(world.sh[:, 0]), 0.0, 1.0).astype(np.float32)
    UsdGeom.PrimvarsAPI(splat.GetPrim()).CreatePrimvar(
        "displayColor", Sdf.ValueTypeNames.Color3fArray, UsdGeom.Tokens.vertex).Set(Vt.Vec3fArray.FromNumpy(colour))
    lo, hi = means.min(axis=0), means.max(axis=0)
    UsdGeom.Boundable(splat.GetPrim()).CreateExtentAttr(Vt.Vec3fArray.FromNumpy(np.stack([lo, hi])))
    layer.comment = f"srender_ros world export: {n} Gaussians, SH degree {world.sh_degree}"
    layer.Save()


def read_usd_arrays(path: Path | str, prim_path: str = PRIM_PATH) -> dict[str, np.ndarray]:
    """Open a USD file written by :func:`write_usd` with pxr and return its arrays (for checks).

    Returns:
        positions [N, 3], orientations_wxyz [N, 4], scales [N, 3] (linear), opacities [N],
        sh [N, K, 3], and 'degree' as a 0-d array.
    Raises:
        OSError: the stage does not open or has no ParticleField3DGaussianSplat at ``prim_path``.
    """
    from pxr import Usd, UsdVol

    stage = Usd.Stage.Open(str(path))
    if stage is None:
        raise OSError(f"{path}: USD could not open it")
    prim = stage.GetPrimAtPath(prim_path)
    if not prim or prim.GetTypeName() != "ParticleField3DGaussianSplat":
        raise OSError(f"{path}: no ParticleField3DGaussianSplat prim at {prim_path}")
    s = UsdVol.ParticleField3DGaussianSplat(prim)
    degree = int(s.GetRadianceSphericalHarmonicsDegreeAttr().Get())
    pos = np.asarray(s.GetPositionsAttr().Get(), dtype=np.float32)
    q = np.asarray(s.GetOrientationsAttr().Get(), dtype=np.float32)  # memory (x, y, z, w)
    return {
        "positions": pos,
        "orientations_wxyz": q[:, [3, 0, 1, 2]],
        "scales": np.asarray(s.GetScalesAttr().Get(), dtype=np.float32),
        "opacities": np.asarray(s.GetOpacitiesAttr().Get(), dtype=np.float32),
        "sh": np.asarray(s.GetRadianceSphericalHarmonicsCoefficientsAttr().Get(), dtype=np.float32).reshape(
            len(pos), (degree + 1) ** 2, 3),
        "degree": np.asarray(degree),
    }
