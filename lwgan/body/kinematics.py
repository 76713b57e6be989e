"""`KeypointBody`: a body model's joints and keypoints without skinning every vertex.

Fitting needs only the J joints and the K keypoints of `BodyModel.forward`, not its V vertices. Linear
blend skinning is linear in the per-joint transforms A_j x = G_j (x - J_j) + p_j (global rotation G_j,
posed joint p_j, rest joint J_j), and a keypoint is a fixed linear combination (the regressor R) of
skinned vertices, so

    keypoint_k = sum_j G_j (P_kj - M_kj J_j) + M_kj p_j,
    M_kj = sum_v R_kv w_vj,    P_kj = sum_v R_kv w_vj (t_v + D_v beta + E_v f(pose)),

with skinning weights w, template t, shape directions D, pose directions E and SMPL's pose feature
f = (rotations of joints 1.. minus identity). M and the three parts of P are contracted once here, so a
forward pass costs O(K J) per body instead of O(V J): exact (to float rounding) for any SMPL-format
model, pose blend shapes included. The kinematic chain runs one tree level at a time.
"""

from __future__ import annotations

import dataclasses

import torch

from lwgan.body.model import BodyModel


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """Posed joints and keypoints: joints (B, J, 3), keypoints (B, K, 3), model/camera axes, metres,
    no translation (the same values as `BodyOutput.joints` / `.keypoints`)."""

    joints: torch.Tensor
    keypoints: torch.Tensor


def _levels(parents: list[int]) -> list[torch.Tensor]:
    """Joint indices grouped by depth in the tree, the root's level first (the root alone)."""
    depth = [0] * len(parents)
    for j, parent in enumerate(parents):
        if j > 0:
            if not 0 <= parent < j:
                raise ValueError(f"joint {j} has parent {parent}: joints must follow their parents")
            depth[j] = depth[parent] + 1
    return [
        torch.tensor([j for j in range(len(parents)) if depth[j] == d], dtype=torch.long)
        for d in range(1, max(depth) + 1)
    ]


class KeypointBody(torch.nn.Module):
    """Joints and keypoints of a `BodyModel` from rotation matrices, at a cost independent of V.

    Buffers (float64 contractions stored in float32): rest joints J0 (J, 3) and their shape directions
    (J, 3, S); M (K, J); P0 (K, J, 3), its shape directions (K, J, 3, S) and pose directions
    (K, J, 3, 9 (J - 1)).
    """

    def __init__(self, body: BodyModel) -> None:
        super().__init__()
        smpl = body.smpl
        template = smpl.v_template.double()  # (V, 3)
        shapedirs = smpl.shapedirs.double()  # (V, 3, S)
        num_v = template.shape[0]
        posedirs = smpl.posedirs.double().reshape(-1, num_v, 3)  # (P, V, 3), P = 9 (J - 1)
        weights = smpl.lbs_weights.double()  # (V, J)
        regressor = body.kp_regressor.double()  # (K, V)
        joint_regressor = smpl.J_regressor.double()  # (J, V)
        mix = regressor[:, :, None] * weights[None]  # (K, V, J)
        self.register_buffer("rest_joints", (joint_regressor @ template).float())  # (J, 3)
        self.register_buffer(
            "rest_joint_dirs", torch.einsum("jv,vcs->jcs", joint_regressor, shapedirs).float()
        )  # (J, 3, S)
        self.register_buffer("mix", mix.sum(dim=1).float())  # (K, J)
        self.register_buffer("mix_template", torch.einsum("kvj,vc->kjc", mix, template).float())  # (K, J, 3)
        self.register_buffer(
            "mix_shape", torch.einsum("kvj,vcs->kjcs", mix, shapedirs).float()
        )  # (K, J, 3, S)
        if bool(posedirs.abs().max() > 0):
            mix_pose = torch.einsum("kvj,pvc->kjcp", mix, posedirs).float()  # (K, J, 3, P)
        else:
            mix_pose = torch.zeros(0)  # no pose blend shapes (e.g. the default body): skipped
        self.register_buffer("mix_pose", mix_pose)
        parents = [int(p) for p in body.parents]
        parents[0] = -1
        self.parents = parents
        self._levels = _levels(parents)
        self.register_buffer("parent_index", torch.tensor([max(p, 0) for p in parents], dtype=torch.long))

    @property
    def num_betas(self) -> int:
        return int(self.rest_joint_dirs.shape[-1])

    def forward(self, betas: torch.Tensor, rotations: torch.Tensor) -> Skeleton:
        """betas: (B, S) (or (1, S), shared); rotations: (B, J, 3, 3) per-joint rotation relative to the
        parent, joint 0 the global orientation. Returns the posed `Skeleton`."""
        batch = rotations.shape[0]
        betas = betas.to(rotations.dtype).expand(batch, -1)  # (B, S)
        rest = self.rest_joints + torch.einsum("jcs,bs->bjc", self.rest_joint_dirs, betas)  # (B, J, 3)
        bone = rest - rest[:, self.parent_index]  # (B, J, 3) offset from the parent joint
        root = torch.zeros(1, dtype=torch.long, device=rotations.device)
        glob = rotations.new_zeros(rotations.shape).index_copy(1, root, rotations[:, :1])  # (B, J, 3, 3)
        pos = rest.new_zeros(rest.shape).index_copy(1, root, rest[:, :1])  # (B, J, 3)
        for level in self._levels:
            level = level.to(rotations.device)
            parent = self.parent_index[level]
            parent_rot = glob[:, parent]  # (B, L, 3, 3)
            level_rot = parent_rot @ rotations[:, level]  # (B, L, 3, 3)
            level_pos = pos[:, parent] + torch.einsum("blij,blj->bli", parent_rot, bone[:, level])  # (B, L, 3)
            glob = glob.index_copy(1, level, level_rot)
            pos = pos.index_copy(1, level, level_pos)
        points = self.mix_template + torch.einsum("kjcs,bs->bkjc", self.mix_shape, betas)  # (B, K, J, 3)
        if self.mix_pose.numel():
            eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
            feature = (rotations[:, 1:] - eye).reshape(batch, -1)  # (B, 9 (J - 1))
            points = points + torch.einsum("kjcp,bp->bkjc", self.mix_pose, feature)
        local = points - self.mix[None, :, :, None] * rest[:, None]  # (B, K, J, 3): P_kj - M_kj J_j
        keypoints = torch.einsum("bjcd,bkjd->bkc", glob, local) + torch.einsum(
            "kj,bjc->bkc", self.mix, pos
        )  # (B, K, 3)
        return Skeleton(joints=pos, keypoints=keypoints)
