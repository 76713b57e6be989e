"""A video's worth of body poses at once: posing in chunks and weak-perspective projection."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lwgan.body.cameras import weak_perspective_project
from lwgan.body.model import BodyModel, BodyOutput

_BODY_CHUNK = 64  # frames per body-model call (bounds the skinning's memory)


def pose_body(body: BodyModel, betas: np.ndarray, pose: np.ndarray) -> BodyOutput:
    """The posed body, without translation, in camera axes (the pose carries the camera-facing global
    orientation). betas: (S,) float32; pose: (N, J * 3) float32. Returns (N, ...) float32 tensors."""
    with torch.no_grad():
        shape = torch.from_numpy(np.asarray(betas, dtype=np.float32))[None]  # (1, S)
        outs = [
            body(shape.expand(len(chunk), -1), torch.from_numpy(np.asarray(chunk, dtype=np.float32)))
            for chunk in np.array_split(pose, max(1, -(-len(pose) // _BODY_CHUNK)))
        ]
    fields = dataclasses.fields(BodyOutput)
    return BodyOutput(*(torch.cat([getattr(out, field.name) for out in outs]) for field in fields))


def project_video(body: BodyModel, betas: np.ndarray, pose: np.ndarray, cam: np.ndarray) -> torch.Tensor:
    """(N, V, 3) projected vertices (NDC x, y and depth) of a video's ground truth: betas (S,), pose
    (N, J * 3), cam (N, 3) weak perspective (s, tx, ty)."""
    vertices = pose_body(body, betas, pose).vertices
    return weak_perspective_project(vertices, torch.from_numpy(np.asarray(cam, dtype=np.float32)))


def project_keypoints(body: BodyModel, betas: np.ndarray, pose: np.ndarray, cam: np.ndarray) -> torch.Tensor:
    """(N, K, 3) projected keypoints (NDC x, y and depth) of a video's fit, the body model's keypoint
    regressor applied to the same posed mesh as `project_video`: betas (S,), pose (N, J * 3), cam (N, 3)."""
    keypoints = pose_body(body, betas, pose).keypoints  # (N, K, 3)
    return weak_perspective_project(keypoints, torch.from_numpy(np.asarray(cam, dtype=np.float32)))
