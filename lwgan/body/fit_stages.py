"""The two stages of `lwgan.body.fit.fit_video` on one chunk of frames, and the state they share.

Stage 1 (`search_orientation`) tries C turns per frame with the body in the prior's mean pose (its
keypoints are then a fixed point set X, so a candidate costs one 3 x 3 rotation), refines each with Adam
on the torso and face keypoints, and picks the candidate path by dynamic programming. Stage 2 (`refine`)
optimises every parameter with the loss described in `lwgan.body.fit`. The global rotation of stage 2
is R = R_1 exp(delta) around the stage-1 rotation R_1, which has no axis-angle wrap at pi.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import smplx.lbs
import torch
import torch.nn.functional as F

from lwgan.body.cameras import axis_angle_to_matrix, facing_camera_orient, weak_perspective_project
from lwgan.body.extras import SMPL_JOINT_NAMES
from lwgan.body.kinematics import KeypointBody
from lwgan.body.model import BodyModel
from lwgan.body.poses import matrix_to_axis_angle
from lwgan.body.priors import PosePrior, euler_to_matrix, shape_prior
from lwgan.render.soft import SoftSilhouetteSettings, soft_silhouette

if TYPE_CHECKING:
    from lwgan.body.fit import FitOptions

REFERENCE_SIZE = 256  # pixel errors are measured as if the image were this many pixels wide
TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
FACE_WEIGHT = 0.5  # of a face keypoint relative to a torso keypoint in stage 1
_PX = REFERENCE_SIZE / 2.0  # NDC -> reference pixels


@dataclasses.dataclass(frozen=True)
class FitState:
    """Parameters of n frames; any field None = not known yet.

    rotation: (n, 3, 3) global rotation; euler: (n, J - 1, 3) body-joint Euler angles, radians
    (`lwgan.body.priors`); cam: (n, 3) weak perspective (s, tx, ty); betas: (S,) shared.
    """

    rotation: torch.Tensor | None = None
    euler: torch.Tensor | None = None
    cam: torch.Tensor | None = None
    betas: torch.Tensor | None = None

    def slice(self, frames: slice) -> FitState:
        pick = lambda value: None if value is None else value[frames]  # noqa: E731
        return FitState(pick(self.rotation), pick(self.euler), pick(self.cam), self.betas)

    def last(self) -> FitState:
        return self.slice(slice(-1, None))

    @staticmethod
    def cat(states: list[FitState]) -> FitState:
        """Frames of complete states one after the other; betas of the last."""
        return FitState(
            *(torch.cat([getattr(s, name) for s in states]) for name in ("rotation", "euler", "cam")),
            betas=states[-1].betas,
        )


@dataclasses.dataclass(frozen=True)
class ChunkFit:
    """A fitted chunk: its complete `FitState`, the mean keypoint error (n,) in reference pixels over
    the confident keypoints (0 where there are none), and the loss history."""

    state: FitState
    error: torch.Tensor
    loss: dict[str, list[float]]


def geman_mcclure(squared: torch.Tensor, scale: float) -> torch.Tensor:
    """Geman-McClure rho of squared errors: scale^2 e^2 / (scale^2 + e^2); ~e^2 near 0, -> scale^2."""
    scale2 = scale * scale
    return scale2 * squared / (scale2 + squared)


def so3_exp(vector: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vector -> (..., 3, 3) rotation, with the correct gradient at 0 (where
    `axis_angle_to_matrix`'s is zero): R = I + a(t) K + b(t) K^2, K = [v]_x, t = |v|, a = sin t / t,
    b = (1 - cos t) / t^2, both from their Taylor series near 0."""
    t2 = vector.pow(2).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = t2 < 1e-6
    t = t2.clamp_min(1e-6).sqrt()
    a = torch.where(small, 1.0 - t2 / 6.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24.0, (1.0 - torch.cos(t)) / t2.clamp_min(1e-6))
    x, y, z = vector.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*vector.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=vector.dtype, device=vector.device)
    return eye + a * skew + b * (skew @ skew)


def interpolate_missing(state: FitState, valid: torch.Tensor, anchor: FitState | None) -> FitState:
    """Fill frames with valid False from their nearest valid neighbours (linear in Euler angles and
    camera, geodesic in rotation; a copy at the ends). The anchor, if any, is a valid frame before the
    first. With no valid frame and no anchor, the state is returned unchanged."""
    if anchor is not None:
        state = FitState.cat([anchor, state])
        valid = torch.cat((valid.new_ones(1), valid))
    n = valid.shape[0]
    if bool(valid.all()) or not bool(valid.any()):
        return state.slice(slice(1, None)) if anchor is not None else state
    index = torch.arange(n, device=valid.device)
    prev = torch.cummax(torch.where(valid, index, -1), dim=0).values  # (n,) last valid <= i, -1 = none
    after = torch.where(valid, index, n).flip(0)
    nxt = torch.cummin(after, dim=0).values.flip(0)  # (n,) first valid >= i, n = none
    lo = torch.where(prev >= 0, prev, nxt)
    hi = torch.where(nxt < n, nxt, prev)
    span = (hi - lo).clamp_min(1).to(state.cam.dtype)
    t = ((index - lo).to(span.dtype) / span)[:, None]  # (n, 1); 0 where lo == hi
    euler = torch.lerp(state.euler[lo], state.euler[hi], t[..., None])
    cam = torch.lerp(state.cam[lo], state.cam[hi], t)
    r_lo = state.rotation[lo]  # (n, 3, 3)
    step = matrix_to_axis_angle(r_lo.transpose(-1, -2) @ state.rotation[hi])  # (n, 3)
    rotation = r_lo @ so3_exp(step * t)
    keep = valid[:, None]
    out = FitState(
        rotation=torch.where(keep[..., None], state.rotation, rotation),
        euler=torch.where(keep[..., None], state.euler, euler),
        cam=torch.where(keep, state.cam, cam),
        betas=state.betas,
    )
    return out.slice(slice(1, None)) if anchor is not None else out


def _indices(names: tuple[str, ...], wanted: tuple[str, ...]) -> list[int]:
    return [names.index(name) for name in wanted if name in names]


def _camera_from_points(points: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weak perspective (..., 3) putting points (..., k, 2) on target (..., k, 2): scale from the weighted
    spread, offset from the weighted centroid. weight (..., k); no weight gives (1, 0, 0)."""
    total = weight.sum(-1, keepdim=True).clamp_min(1e-9)[..., None]  # (..., 1, 1)
    w = weight[..., None]
    p_mean = (w * points).sum(-2, keepdim=True) / total
    y_mean = (w * target).sum(-2, keepdim=True) / total
    spread_p = (w * (points - p_mean) ** 2).sum((-1, -2))
    spread_y = (w * (target - y_mean) ** 2).sum((-1, -2))
    scale = torch.sqrt(spread_y.clamp_min(1e-12) / spread_p.clamp_min(1e-12))
    scale = torch.where(weight.sum(-1) > 0, scale, torch.ones_like(scale)).clamp(1e-3, 1e3)
    offset = (y_mean / scale[..., None, None] - p_mean)[..., 0, :]  # (..., 2)
    return torch.cat((scale[..., None], offset), dim=-1)


def _rotation_angle2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared geodesic angle between rotations a (..., 3, 3) and b (..., 3, 3)."""
    cos = ((a * b).sum((-1, -2)) - 1.0) / 2.0  # trace(a^T b) = sum of a * b
    return torch.acos(cos.clamp(-1.0, 1.0)) ** 2


def search_orientation(
    rest: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    names: tuple[str, ...],
    options: FitOptions,
    anchor: torch.Tensor | None,
    history: dict[str, list[float]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1. rest: (K, 3) keypoints of the mean pose relative to the root joint; target (n, K, 2) NDC;
    weight (n, K); anchor: (3, 3) rotation of the frame before, or None.
    Returns the chosen rotation (n, 3, 3) and camera (n, 3) per frame."""
    n, count = target.shape[0], options.orientation_candidates
    part = torch.zeros(rest.shape[0], device=rest.device)
    part[_indices(names, TORSO)] = 1.0
    part[_indices(names, FACE)] = FACE_WEIGHT
    w = weight * part  # (n, K)
    w = torch.where(w.sum(1, keepdim=True) > 0, w, weight)  # no torso or face: use every keypoint
    yaw = torch.arange(count, device=rest.device, dtype=rest.dtype) * (2.0 * math.pi / count)
    start = axis_angle_to_matrix(facing_camera_orient(yaw, device=rest.device))  # (C, 3, 3)
    with torch.no_grad():
        points = torch.einsum("cij,kj->cki", start, rest)  # (C, K, 3)
        cam0 = _camera_from_points(points[None, ..., :2], target[:, None], w[:, None])  # (n, C, 3)
    delta = torch.zeros(n, count, 3, device=rest.device, requires_grad=True)
    log_scale = cam0[..., 0].log().clone().requires_grad_(True)
    offset = cam0[..., 1:].clone().requires_grad_(True)
    optimiser = torch.optim.Adam([delta, log_scale, offset], lr=options.camera_lr)

    def cost() -> torch.Tensor:
        rotation = start @ so3_exp(delta)  # (n, C, 3, 3)
        xy = torch.einsum("ncij,kj->ncki", rotation[..., :2, :], rest)  # (n, C, K, 2)
        proj = log_scale.exp()[..., None, None] * (xy + offset[..., None, :])
        squared = ((proj - target[:, None]) * _PX).pow(2).sum(-1)  # (n, C, K)
        return (w[:, None] * geman_mcclure(squared, options.robust_scale)).sum(-1)  # (n, C)

    for _ in range(options.camera_iterations):
        optimiser.zero_grad(set_to_none=True)
        loss = cost()
        total = loss.sum() / max(n * count, 1)
        total.backward()
        optimiser.step()
        history.setdefault("camera/total", []).append(float(total.detach()))
    with torch.no_grad():
        energy = cost()  # (n, C)
        rotation = start @ so3_exp(delta)  # (n, C, 3, 3)
        cam = torch.cat((log_scale.exp()[..., None], offset), dim=-1)  # (n, C, 3)
        choice = _best_path(energy, rotation, options.turn_penalty, anchor, weight.sum(1) > 0)
        pick = torch.arange(n, device=rest.device)
        return rotation[pick, choice], cam[pick, choice]


def _best_path(
    energy: torch.Tensor, rotation: torch.Tensor, penalty: float, anchor: torch.Tensor | None, valid: torch.Tensor
) -> torch.Tensor:
    """(n,) candidate per frame minimising sum energy + penalty * turn^2 over the valid frames (Viterbi).
    energy (n, C); rotation (n, C, 3, 3); valid (n,) bool (other frames take candidate 0)."""
    frames = torch.nonzero(valid).squeeze(1).tolist()
    choice = torch.zeros(energy.shape[0], dtype=torch.long, device=energy.device)
    if not frames:
        return choice
    first = frames[0]
    total = energy[first].clone()  # (C,)
    if anchor is not None:
        total = total + penalty * _rotation_angle2(anchor, rotation[first])
    back = []
    for prev, cur in zip(frames[:-1], frames[1:], strict=True):
        turn = _rotation_angle2(rotation[prev][:, None], rotation[cur][None])  # (C, C)
        best, arg = (total[:, None] + penalty * turn).min(dim=0)  # (C,) over the previous candidate
        total = best + energy[cur]
        back.append(arg)
    state = int(total.argmin())
    choice[frames[-1]] = state
    for frame, arg in zip(reversed(frames[:-1]), reversed(back), strict=True):
        state = int(arg[state])
        choice[frame] = state
    return choice


@dataclasses.dataclass(frozen=True)
class _Problem:
    """What stage 2 fits: targets (n, K, 2) NDC, weights (n, K), valid frames (n,) and the fixed parts."""

    skeleton: KeypointBody
    prior: PosePrior
    target: torch.Tensor
    weight: torch.Tensor
    valid: torch.Tensor
    anchor: FitState | None
    options: FitOptions


def _smoothness(values: torch.Tensor, anchor: torch.Tensor | None) -> torch.Tensor:
    """Mean over consecutive frames of the squared change of values (n, ...), anchor (1, ...) first."""
    if anchor is not None:
        values = torch.cat((anchor.to(values), values))
    if values.shape[0] < 2:
        return values.new_zeros(())
    return (values[1:] - values[:-1]).pow(2).flatten(1).sum(1).mean()


def _camera_code(cam: torch.Tensor) -> torch.Tensor:
    """(n, 3) (s, tx, ty) -> (n, 3) (log s, s tx, s ty): scale change and image motion of the root."""
    return torch.cat((cam[:, :1].log(), cam[:, :1] * cam[:, 1:]), dim=1)


def _silhouette_loss(
    body: BodyModel, betas: torch.Tensor, rotations: torch.Tensor, cam: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """(n,) 1 - soft IoU between the projected body and mask (n, S, S) in [0, 1]."""
    smpl = body.smpl
    vertices, _ = smplx.lbs.lbs(
        betas[None].expand(rotations.shape[0], -1), rotations, smpl.v_template, smpl.shapedirs,
        smpl.posedirs, smpl.J_regressor, smpl.parents, smpl.lbs_weights, pose2rot=False,
    )  # (n, V, 3)
    size = mask.shape[-1]
    silhouette = soft_silhouette(
        weak_perspective_project(vertices, cam), body.faces, SoftSilhouetteSettings(size, size, sigma=0.3)
    )  # (n, S, S)
    overlap = (silhouette * mask).sum((1, 2))
    union = (silhouette + mask - silhouette * mask).sum((1, 2)).clamp_min(1e-6)
    return 1.0 - overlap / union


def refine(
    problem: _Problem,
    start: FitState,
    fit_betas: bool,
    history: dict[str, list[float]],
    silhouette: tuple[BodyModel, torch.Tensor, torch.Tensor] | None = None,
) -> FitState:
    """Stage 2 from a complete start state; with silhouette = (body, masks (n, S, S), has_mask (n,)) the
    silhouette steps instead. Returns the optimised state (detached)."""
    options = problem.options
    delta = torch.zeros_like(start.cam, requires_grad=True)  # (n, 3): R = R_start exp(delta)
    euler = start.euler.clone().requires_grad_(True)
    log_scale = start.cam[:, 0].log().clone().requires_grad_(True)
    offset = start.cam[:, 1:].clone().requires_grad_(True)
    betas = start.betas.clone().requires_grad_(fit_betas)
    params = [delta, euler, log_scale, offset] + ([betas] if fit_betas else [])
    iterations = options.silhouette_iterations if silhouette else options.pose_iterations
    lr = options.pose_lr * (0.25 if silhouette else 1.0)
    optimiser = torch.optim.Adam(params, lr=lr)
    valid = problem.valid.to(start.cam.dtype)
    count = valid.sum().clamp_min(1.0)
    prefix = "silhouette" if silhouette else "pose"
    anchor = problem.anchor
    for step in range(iterations):
        for group in optimiser.param_groups:  # cosine decay to a tenth: a pure function of the step
            group["lr"] = lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * step / max(iterations, 1))))
        optimiser.zero_grad(set_to_none=True)
        rotation = start.rotation @ so3_exp(delta)  # (n, 3, 3)
        rotations = torch.cat((rotation[:, None], euler_to_matrix(euler)), dim=1)  # (n, J, 3, 3)
        cam = torch.cat((log_scale.exp()[:, None], offset), dim=1)  # (n, 3)
        keypoints = problem.skeleton(betas[None], rotations).keypoints  # (n, K, 3)
        proj = weak_perspective_project(keypoints, cam)[..., :2]  # (n, K, 2)
        squared = ((proj - problem.target) * _PX).pow(2).sum(-1)  # (n, K)
        terms = {
            "keypoints": options.keypoint_weight
            * ((problem.weight * geman_mcclure(squared, options.robust_scale)).sum(1) * valid).sum() / count,
            "prior": options.pose_prior_weight * (problem.prior.gaussian(euler) * valid).sum() / count,
            "limits": options.limit_weight * (problem.prior.limits(euler) * valid).sum() / count,
            "shape": options.shape_prior_weight * shape_prior(betas),
            "smooth": options.pose_smooth_weight * _smoothness(euler, None if anchor is None else anchor.euler)
            + options.orient_smooth_weight * _smoothness(rotation, None if anchor is None else anchor.rotation)
            + options.camera_smooth_weight
            * _smoothness(_camera_code(cam), None if anchor is None else _camera_code(anchor.cam)),
        }
        if silhouette is not None:
            body, mask, has_mask = silhouette
            use = has_mask & problem.valid
            loss = _silhouette_loss(body, betas, rotations[use], cam[use], mask[use])
            terms["silhouette"] = options.silhouette_weight * loss.sum() / use.sum().clamp_min(1)
        total = sum(terms.values())
        total.backward()
        optimiser.step()
        history.setdefault(f"{prefix}/total", []).append(float(total.detach()))
        for name, value in terms.items():
            history.setdefault(f"{prefix}/{name}", []).append(float(value.detach()))
    with torch.no_grad():
        return FitState(
            rotation=start.rotation @ so3_exp(delta),
            euler=euler.detach().clone(),
            cam=torch.cat((log_scale.exp()[:, None], offset), dim=1).detach(),
            betas=betas.detach().clone(),
        )


def keypoint_error(skeleton: KeypointBody, state: FitState, target: torch.Tensor, weight: torch.Tensor):
    """(n,) mean distance in reference pixels between the state's keypoints and the targets with weight
    > 0 (0 for a frame without any)."""
    with torch.no_grad():
        rotations = torch.cat((state.rotation[:, None], euler_to_matrix(state.euler)), dim=1)
        keypoints = skeleton(state.betas[None], rotations).keypoints
        proj = weak_perspective_project(keypoints, state.cam)[..., :2]  # (n, K, 2)
        distance = ((proj - target) * _PX).norm(dim=-1)  # (n, K)
        used = (weight > 0).to(distance.dtype)
        return (distance * used).sum(1) / used.sum(1).clamp_min(1.0)


def _downsample_masks(masks: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """(n, H, W) bool -> (n, size, size) float coverage in [0, 1] (area average)."""
    masks = masks.to(device=device, dtype=torch.float32)[:, None]  # (n, 1, H, W)
    return F.interpolate(masks, size=(size, size), mode="area")[:, 0]


def fit_chunk(
    skeleton: KeypointBody,
    body: BodyModel,
    target: torch.Tensor,
    weight: torch.Tensor,
    options: FitOptions,
    anchor: FitState | None,
    betas: torch.Tensor | None,
    fit_betas: bool,
    init: FitState | None,
    masks: torch.Tensor | None,
) -> ChunkFit:
    """Both stages on one chunk: target (n, K, 2) NDC, weight (n, K) (0 = ignore; a frame without any
    weight is missing), anchor: the previous chunk's last frame, betas (S,) to start from (or keep)."""
    if body.joint_names != SMPL_JOINT_NAMES:
        raise ValueError(
            f"{body.source}: fitting needs SMPL's 24-joint skeleton (its priors are written for it); "
            f"this model's joints are {body.joint_names}"
        )
    device, n = target.device, target.shape[0]
    prior = PosePrior().to(device)
    valid = weight.sum(1) > 0  # (n,)
    history: dict[str, list[float]] = {}
    if betas is None:
        betas = torch.zeros(skeleton.num_betas, device=device)
    init = init or FitState()
    euler = prior.mean.expand(n, -1, -1) if init.euler is None else prior.clamp(init.euler)
    eye = torch.eye(3, device=device)
    rotation, cam = init.rotation, init.cam
    if rotation is None:
        with torch.no_grad():
            rest_rotations = torch.cat((eye[None], euler_to_matrix(prior.mean)))[None]  # (1, J, 3, 3)
            rest = skeleton(betas[None], rest_rotations)
        root = rest.joints[0, 0]  # (3,)
        rotation, cam_root = search_orientation(
            rest.keypoints[0] - root, target, weight, body.keypoint_names, options,
            None if anchor is None else anchor.rotation[0], history,
        )
        if cam is None:
            cam = torch.cat((cam_root[:, :1], cam_root[:, 1:] - root[:2]), dim=1)  # offset of root -> body
    if cam is None:
        with torch.no_grad():
            rotations = torch.cat((rotation[:, None], euler_to_matrix(euler)), dim=1)
            points = skeleton(betas[None], rotations).keypoints[..., :2]  # (n, K, 2)
            cam = _camera_from_points(points, target, weight)
    state = interpolate_missing(FitState(rotation, euler.clone(), cam, betas), valid, anchor)
    problem = _Problem(skeleton, prior, target, weight, valid, anchor, options)
    state = refine(problem, state, fit_betas, history)
    if masks is not None and options.silhouette_weight > 0 and options.silhouette_iterations > 0:
        has_mask = masks.flatten(1).any(1).to(device)
        mask = _downsample_masks(masks, options.silhouette_size, device)
        state = refine(problem, state, fit_betas, history, silhouette=(body.to(device), mask, has_mask))
    state = interpolate_missing(state, valid, anchor)
    return ChunkFit(state=state, error=keypoint_error(skeleton, state, target, weight), loss=history)
