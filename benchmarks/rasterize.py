"""Rasteriser speed and backend agreement on a posed body filling ~60 % of the image height.

One compute thread (NUMBA_NUM_THREADS=1, torch.set_num_threads(1)): the pipeline scales out with
processes. Times are medians over frames with the warm-up (compilation, first allocations) excluded.
The last line of stdout is one JSON object; add a measurement by adding a function to `MEASUREMENTS`.

    python benchmarks/rasterize.py [--quick] [--frames N] [--repeats R]
"""

from __future__ import annotations

import os

os.environ["NUMBA_NUM_THREADS"] = "1"

import argparse  # noqa: E402  (the thread count must be set before numba or torch are imported)
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lwgan.body.cameras import facing_camera_orient  # noqa: E402
from lwgan.body.model import BodyModel  # noqa: E402
from lwgan.render.raster import RasterSettings, rasterize  # noqa: E402
from lwgan.warp.flow import flow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BODY = ROOT / "lwgan" / "assets" / "default_body.npz"
FILL = 0.6  # fraction of the image height spanned by the body


@dataclass(frozen=True)
class Scene:
    """Frames to render: verts (N, V, 3) float32 NDC + depth, faces (F, 3) int64, and where they came from."""

    verts: torch.Tensor
    faces: torch.Tensor
    mesh: str
    pose: str


def _fit_height(points: np.ndarray) -> np.ndarray:
    """(V, 3) camera-axis points -> (V, 3) float32 weak-perspective NDC filling FILL of the height."""
    lo, hi = points.min(0), points.max(0)
    scale = 2.0 * FILL / (hi[1] - lo[1])
    xy = (points[:, :2] - 0.5 * (lo[:2] + hi[:2])) * scale
    return np.concatenate([xy, points[:, 2:]], axis=1).astype(np.float32)


def _yaws(n: int) -> list[float]:
    return [2.0 * math.pi * k / n + 0.3 for k in range(n)]


def load_scene(n: int, seed: int) -> Scene:
    """The shipped default body posed by `BodyModel` (random joint rotations, turning yaw)."""
    model = BodyModel.from_file(DEFAULT_BODY)
    gen = torch.Generator().manual_seed(seed)
    body_pose = 0.3 * torch.randn(n, 3 * (model.num_joints - 1), generator=gen)  # (N, (J-1)*3) radians
    orient = facing_camera_orient(torch.tensor(_yaws(n)))  # (N, 3)
    with torch.no_grad():
        verts = model(torch.zeros(n, 0), torch.cat((orient, body_pose), dim=1)).vertices  # (N, V, 3)
    frames = np.stack([_fit_height(v) for v in verts.double().numpy()])
    return Scene(torch.from_numpy(frames), model.faces.to(torch.int64).cpu(), "default_body", "body_model")


def _time_frames(scene: Scene, settings: RasterSettings, repeats: int) -> float:
    """Median ms per frame of rasterising each frame alone, after one warm-up call."""
    rasterize(scene.verts[:1], scene.faces, settings)
    times = []
    for _ in range(repeats):
        for frame in scene.verts.split(1):
            start = time.perf_counter()
            rasterize(frame, scene.faces, settings)
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measure_numba(scene: Scene, args: argparse.Namespace) -> dict[str, float]:
    settings = {size: RasterSettings(size, size, backend="numba") for size in (256, 512)}
    return {f"ms_per_frame_{k}": round(_time_frames(scene, s, args.repeats), 3) for k, s in settings.items()}


def measure_torch(scene: Scene, args: argparse.Namespace) -> dict[str, float]:
    settings = RasterSettings(256, 256, backend="torch")
    return {"torch_ms_per_frame_256": round(_time_frames(scene, settings, max(1, args.repeats // 2)), 3)}


def measure_agreement(scene: Scene, args: argparse.Namespace) -> dict[str, float]:
    """Fraction of pixels (over all frames, at 256^2 and 512^2) where both backends pick the same face."""
    same = total = 0
    for size in (256, 512):
        a = rasterize(scene.verts, scene.faces, RasterSettings(size, size, backend="numba"))
        b = rasterize(scene.verts, scene.faces, RasterSettings(size, size, backend="torch"))
        same += int((a.face_index == b.face_index).sum())
        total += a.face_index.numel()
    coverage = float(a.silhouette.float().mean())
    return {"agreement": same / total, "coverage_512": round(coverage, 4)}


def measure_flow(scene: Scene, args: argparse.Namespace) -> dict[str, float]:
    """Median ms to compute the flow T between two cached records at 256^2 (one gather, no renderer),
    with and without the visible-faces option."""
    frags = rasterize(scene.verts, scene.faces, RasterSettings(256, 256))
    pairs = [(k, (k + 1) % len(scene.verts)) for k in range(len(scene.verts))]
    out = {}
    for key, visible in (("flow_ms_per_pair_256", False), ("flow_visible_ms_per_pair_256", True)):
        times = []
        for _ in range(args.repeats):
            for t, s in pairs:
                start = time.perf_counter()
                flow(frags.face_index[t : t + 1], frags.bary[t : t + 1], scene.verts[s : s + 1], scene.faces,
                     frags.face_index[s : s + 1] if visible else None)
                times.append(time.perf_counter() - start)
        out[key] = round(1e3 * statistics.median(times), 3)
    return out


MEASUREMENTS: dict[str, Callable[[Scene, argparse.Namespace], dict[str, float]]] = {
    "numba": measure_numba,
    "torch": measure_torch,
    "agreement": measure_agreement,
    "flow": measure_flow,
}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few frames and repeats (< 30 s)")
    parser.add_argument("--frames", type=int, default=None, help="posed frames (default 24, quick 8)")
    parser.add_argument("--repeats", type=int, default=None, help="passes over frames (default 10, quick 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.frames = args.frames or (8 if args.quick else 24)
    args.repeats = args.repeats or (3 if args.quick else 10)
    torch.set_num_threads(1)
    scene = load_scene(args.frames, args.seed)
    result: dict[str, object] = {
        "mesh": scene.mesh,
        "pose": scene.pose,
        "faces": int(scene.faces.shape[0]),
        "vertices": int(scene.verts.shape[1]),
        "frames": args.frames,
        "fill": FILL,
    }
    for measure in MEASUREMENTS.values():
        result.update(measure(scene, args))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
