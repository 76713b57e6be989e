"""`BodyModel`: a thin torch module over smplx's SMPL layer for any SMPL-format body model.

smplx does the linear blend skinning; lwgan takes only the J kinematic joints from it and computes
keypoints with the body-model file's own regressor. smplx's default extra keypoints index SMPL vertices
by number, so they are switched off here: they would silently pick wrong vertices on another topology.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from importlib import resources
from pathlib import Path

import numpy as np
import smplx
import smplx.utils
import torch

from lwgan.body.extras import HEAD_PART, complete_extras
from lwgan.body.model_io import BodyModelData, BodyModelError, load_body_model


def default_body_path() -> Path:
    """Path of the open default body shipped with lwgan (CC0 mesh, see LICENSE-default-body.md)."""
    return Path(str(resources.files("lwgan") / "assets" / "default_body.npz"))


@dataclasses.dataclass(frozen=True)
class BodyOutput:
    """A posed body.

    vertices:  (B, V, 3) float, model/camera axes, metres (translation applied).
    joints:    (B, J, 3) float, the J kinematic joints in the file's joint order.
    keypoints: (B, K, 3) float, the file's keypoint regressor applied to the vertices (COCO-17 order for
               lwgan's bodies; names in `BodyModel.keypoint_names`).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    keypoints: torch.Tensor


class _KinematicJointsOnly(torch.nn.Module):
    """Replaces smplx's VertexJointSelector: returns the kinematic joints unchanged."""

    def forward(self, vertices: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        return joints


class BodyModel(torch.nn.Module):
    """Shape- and pose-dependent body mesh from an SMPL-format model (`BodyModelData`).

    Missing extras (keypoint regressor, part labels, surface coordinates) are derived on construction
    (`lwgan.body.extras.complete_extras`). Buffers follow ``.to(device, dtype)``; inputs are moved to the
    module's device and dtype.
    """

    def __init__(self, data: BodyModelData, num_betas: int | None = None) -> None:
        super().__init__()
        data = complete_extras(data)
        available = data.num_betas
        if num_betas is None:
            num_betas = available
        if not 1 <= num_betas <= available:
            raise BodyModelError(
                f"{data.source}: num_betas={num_betas} outside [1, {available}] (shapedirs has {available})"
            )
        self.source = data.source
        self.joint_names: tuple[str, ...] | None = data.joint_names
        self.keypoint_names: tuple[str, ...] = data.kp_names
        self.part_names: tuple[str, ...] = data.part_names
        self._num_betas = num_betas
        struct = smplx.utils.Struct(
            v_template=data.v_template,
            shapedirs=data.shapedirs[:, :, :num_betas],
            posedirs=data.posedirs,
            J_regressor=data.J_regressor,
            weights=data.weights,
            kintree_table=data.kintree_table,
            f=data.f,
        )
        # smplx prints a notice for models with fewer than 300 shape components; it is not a problem here.
        with contextlib.redirect_stdout(io.StringIO()):
            self.smpl = smplx.SMPL(
                model_path="",
                data_struct=struct,
                num_betas=num_betas,
                create_betas=False,
                create_global_orient=False,
                create_body_pose=False,
                create_transl=False,
                vertex_ids={name: 0 for name in ("nose", "reye", "leye", "rear", "lear")},
                use_hands=False,
                use_feet_keypoints=False,
            )
        self.smpl.vertex_joint_selector = _KinematicJointsOnly()
        if self.smpl.shapedirs.shape[-1] != num_betas:
            # smplx keeps at most 10 components of a basis with fewer than 300; lwgan keeps what it asked for.
            self.smpl.shapedirs = torch.as_tensor(data.shapedirs[:, :, :num_betas], dtype=torch.float32)
            self.smpl._num_betas = num_betas
        self.register_buffer(
            "kp_regressor", torch.as_tensor(data.kp_regressor, dtype=torch.float32)
        )  # (K, V)
        self.register_buffer("part_labels", torch.as_tensor(data.part_labels, dtype=torch.long))  # (V,)
        self.register_buffer(
            "surface_coords", torch.as_tensor(data.surface_coords, dtype=torch.float32)
        )  # (V, 3)
        if HEAD_PART not in self.part_names:
            raise BodyModelError(f"{data.source}: 'part_names' has no {HEAD_PART!r} part")
        self.register_buffer("head_mask", self.part_labels == self.part_names.index(HEAD_PART))  # (V,)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        extras_path: str | os.PathLike | None = None,
        num_betas: int | None = None,
    ) -> BodyModel:
        """Load a body-model file (.npz, plain or official SMPL .pkl); see `load_body_model`."""
        return cls(load_body_model(path, extras_path), num_betas=num_betas)

    @classmethod
    def default(cls, num_betas: int | None = None) -> BodyModel:
        """The open default body shipped with lwgan."""
        return cls.from_file(default_body_path(), num_betas=num_betas)

    @property
    def num_vertices(self) -> int:
        return int(self.smpl.v_template.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.smpl.J_regressor.shape[0])

    @property
    def num_betas(self) -> int:
        return self._num_betas

    @property
    def num_keypoints(self) -> int:
        return int(self.kp_regressor.shape[0])

    @property
    def faces(self) -> torch.Tensor:
        """(F, 3) int64 triangle vertex indices."""
        return self.smpl.faces_tensor

    @property
    def parents(self) -> torch.Tensor:
        """(J,) int64 parent joint of each joint, -1 for the root."""
        return self.smpl.parents

    def part_mask(self, name: str) -> torch.Tensor:
        """(V,) bool mask of the vertices of body part ``name`` (one of `part_names`)."""
        if name not in self.part_names:
            raise KeyError(
                f"unknown body part {name!r}; parts of {self.source}: {', '.join(self.part_names)}"
            )
        return self.part_labels == self.part_names.index(name)

    def forward(
        self,
        betas: torch.Tensor,
        pose: torch.Tensor,
        transl: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Pose the body.

        betas:  (B, S') shape coefficients, S' <= num_betas (missing ones are 0).
        pose:   (B, J * 3) or (B, J, 3) axis-angle per joint relative to its parent, joint 0 being the global
                orientation (SMPL semantics; zero pose = rest pose).
        transl: (B, 3) or None, added to vertices, joints and keypoints.
        """
        buffer = self.smpl.v_template
        betas = betas.to(device=buffer.device, dtype=buffer.dtype)
        pose = pose.to(device=buffer.device, dtype=buffer.dtype)
        batch = pose.shape[0]
        pose = pose.reshape(batch, -1)  # (B, J * 3)
        if pose.shape[1] != 3 * self.num_joints:
            raise ValueError(
                f"pose has {pose.shape[1]} values per body, expected {3 * self.num_joints} (J * 3)"
            )
        if betas.ndim != 2 or betas.shape[0] != batch or betas.shape[1] > self.num_betas:
            raise ValueError(f"betas has shape {tuple(betas.shape)}, expected ({batch}, <= {self.num_betas})")
        if betas.shape[1] < self.num_betas:
            betas = torch.nn.functional.pad(betas, (0, self.num_betas - betas.shape[1]))  # (B, S)
        if transl is not None:
            transl = transl.to(device=buffer.device, dtype=buffer.dtype)
        out = self.smpl(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:], transl=transl)
        vertices = out.vertices  # (B, V, 3)
        keypoints = torch.einsum("kv,bvc->bkc", self.kp_regressor.to(vertices.dtype), vertices)  # (B, K, 3)
        return BodyOutput(vertices=vertices, joints=out.joints, keypoints=keypoints)

    def rest_vertices(self) -> np.ndarray:
        """(V, 3) float32 template vertices (mean shape, rest pose) as numpy."""
        return self.smpl.v_template.detach().cpu().float().numpy()
