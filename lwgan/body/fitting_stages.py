"""The two stages of `lwgan.body.fitting.fit_video` on one chunk of frames (`fit_chunk`).

Stage 1 (`search_orientation`) tries C turns per frame with the body in the prior's mean pose (its
keypoints are then a fixed point set X, so a candidate costs one 3 x 3 rotation), refines each with Adam
on the torso and face keypoints, and picks the candidate path by dynamic programming. Stage 2 (`refine`)
optimises every parameter with the loss described in `lwgan.body.fitting` (and, with masks, the soft
silhouette term in its last steps). The global rotation of stage 2 is R = R_1 exp(delta) around the
stage-1 rotation R_1, which has no axis-angle wrap at pi.

A chunk may hold several short videos one after the other (`Videos`): each has its own shape, its own
orientation path, and smoothness terms only between its own frames; every per-frame term is averaged over
its own video's frames, so the loss is the sum of the videos' losses and each video's parameters move as
they would in a problem of their own (Adam's steps do not depend on a gradient's scale). Fitting them
together pays the per-iteration overhead once for all of them.
"""

from __future__ import annotations

import dataclasses
import math

import smplx.lbs
import torch
import torch.nn.functional as F

from lwgan.body.cameras import axis_angle_to_matrix, facing_camera_orient, weak_perspective_project
from lwgan.body.extras import SMPL_JOINT_NAMES
from lwgan.body.fitting_state import (
    PX_PER_NDC,
    ChunkFit,
    FitOptions,
    FitState,
    camera_from_points,
    geman_mcclure,
    interpolate_missing,
    so3_exp,
)
from lwgan.body.kinematics import KeypointBody
from lwgan.body.model import BodyModel
from lwgan.body.priors import PosePrior, euler_to_matrix, shape_prior
from lwgan.render.soft import SoftSilhouetteSettings, soft_silhouette

TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
FACE_WEIGHT = 0.5  # of a face keypoint relative to a torso keypoint in stage 1


def _indices(names: tuple[str, ...], wanted: tuple[str, ...]) -> list[int]:
    return [names.index(name) for name in wanted if name in names]


def _rotation_angle2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared geodesic angle between rotations a (..., 3, 3) and b (..., 3, 3)."""
    cos = ((a * b).sum((-1, -2)) - 1.0) / 2.0  # trace(a^T b) = sum of a * b
    return torch.acos(cos.clamp(-1.0, 1.0)) ** 2


@dataclasses.dataclass(frozen=True)
class Videos:
    """Where each video of a chunk lies: lengths (V,) frames of each, one after the other. One video
    (V = 1) is the common case; its betas are then (S,), else (V, S)."""

    lengths: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.lengths)

    def slices(self) -> list[slice]:
        ends = torch.tensor(self.lengths).cumsum(0).tolist()
        return [slice(end - length, end) for end, length in zip(ends, self.lengths, strict=True)]

    def index(self, device: torch.device) -> torch.Tensor:
        """(n,) long: the video of each frame."""
        counts = torch.tensor(self.lengths, device=device)
        return torch.repeat_interleave(torch.arange(self.count, device=device), counts)

    def frame_betas(self, betas: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """(1, S) or (n, S): the betas of each frame, from (S,) or (V, S); index: `index`, when known."""
        if betas.dim() == 1:
            return betas[None]
        return betas[self.index(betas.device) if index is None else index]

    def per_frame_mean(self, valid: torch.Tensor) -> torch.Tensor:
        """(n,) weights that average a per-frame term over each video's valid frames (valid (n,) float)."""
        if self.count == 1:
            return valid / valid.sum().clamp_min(1.0)
        index = self.index(valid.device)
        count = torch.zeros(self.count, dtype=valid.dtype, device=valid.device).index_add_(0, index, valid)
        return valid / count.clamp_min(1.0)[index]

    def pair_mean(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
        """(n - 1,) weights averaging a term of consecutive frames over each video's pairs (0 between two
        videos); None for one video (a plain mean)."""
        if self.count == 1:
            return None
        weights = []
        for length in self.lengths:
            weights += [1.0 / (length - 1)] * (length - 1) + [0.0]
        return torch.tensor(weights[:-1], device=device, dtype=dtype)


def search_orientation(
    rest: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    names: tuple[str, ...],
    options: FitOptions,
    anchor: torch.Tensor | None,
    history: dict[str, list[float]],
    videos: Videos,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1. rest: (K, 3) keypoints of the mean pose relative to the root joint; target (n, K, 2) NDC;
    weight (n, K); anchor: (3, 3) rotation of the frame before, or None (one video only); videos: where
    each video lies (a path per video). Returns the chosen rotation (n, 3, 3) and camera (n, 3) per frame."""
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
        cam0 = camera_from_points(points[None, ..., :2], target[:, None], w[:, None])  # (n, C, 3)
    delta = torch.zeros(n, count, 3, device=rest.device, requires_grad=True)
    log_scale = cam0[..., 0].log().clone().requires_grad_(True)
    offset = cam0[..., 1:].clone().requires_grad_(True)
    optimiser = torch.optim.Adam([delta, log_scale, offset], lr=options.camera_lr)

    def cost() -> torch.Tensor:
        rotation = start @ so3_exp(delta)  # (n, C, 3, 3)
        xy = torch.einsum("ncij,kj->ncki", rotation[..., :2, :], rest)  # (n, C, K, 2)
        proj = log_scale.exp()[..., None, None] * (xy + offset[..., None, :])
        squared = ((proj - target[:, None]) * PX_PER_NDC).pow(2).sum(-1)  # (n, C, K)
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
        found = weight.sum(1) > 0
        choice = torch.cat([
            _best_path(energy[part], rotation[part], options.turn_penalty, anchor, found[part])
            for part in videos.slices()
        ])
        pick = torch.arange(n, device=rest.device)
        return rotation[pick, choice], cam[pick, choice]


def _best_path(
    energy: torch.Tensor,
    rotation: torch.Tensor,
    penalty: float,
    anchor: torch.Tensor | None,
    valid: torch.Tensor,
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


# COCO-17 bones the world term compares: arms, legs, the shoulders, the hips, the trunk's sides
WORLD_BONES = ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16), (5, 6), (11, 12),
               (5, 11), (6, 12))


def bone_directions(points: torch.Tensor) -> torch.Tensor:
    """(..., B, 3) unit vectors along `WORLD_BONES` of COCO-17 points (..., 17, 3); zero for a bone of
    length zero."""
    ends = torch.tensor(WORLD_BONES, device=points.device)
    return F.normalize(points[..., ends[:, 1], :] - points[..., ends[:, 0], :], dim=-1)


SIDE_PAIRS = ((5, 6), (11, 12))  # COCO-17: the shoulders, the hips


def sides_as_keypoints(world: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """world (N, 17, 4) as `WorldBones.of` takes it, with no visibility in the frames where its left and
    right lie the other way round across the image from the 2D keypoints' (target (N, 17, 2), weight
    (N, 17)): there the 3D estimate and the keypoints the fit follows take the person for facing opposite
    ways (a detector turned round in one run and not the other, or the labels turned by the detection's
    side check, `lwgan.body.detect.most_consistent`), and the estimate is left out rather than trusted.
    Across = the right shoulder's and right hip's x less the left ones', summed (a frame where either sum
    is zero is kept)."""
    pairs = torch.tensor(SIDE_PAIRS, device=target.device)
    left, right = pairs[:, 0], pairs[:, 1]
    seen = torch.minimum(weight[:, left], weight[:, right])  # (N, 2)
    visible = world[..., 3].nan_to_num(0.0).clamp(0.0, 1.0)
    seen_3d = torch.minimum(visible[:, left], visible[:, right])
    across = ((target[:, right, 0] - target[:, left, 0]) * seen).sum(1)  # (N,)
    across_3d = ((world[:, right, 0] - world[:, left, 0]).nan_to_num(0.0) * seen_3d).sum(1)
    unseen = world * world.new_tensor([1.0, 1.0, 1.0, 0.0])
    return torch.where((across * across_3d < 0)[:, None, None], unseen, world)


@dataclasses.dataclass(frozen=True)
class WorldBones:
    """Metric 3D keypoints a detector estimated (MediaPipe Pose's world landmarks), as the world term
    uses them: direction (n, B, 3) of each bone of `WORLD_BONES` in camera axes (x right, y down, z away
    from the camera, as the fit's), weight (n, B) the lower visibility of its two ends (0 where either is
    missing)."""

    direction: torch.Tensor
    weight: torch.Tensor

    @classmethod
    def of(cls, world: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> WorldBones:
        """world (N, 17, 4): x, y, z (any unit, camera axes) and visibility in [0, 1]; a missing keypoint
        is NaN or has visibility 0. target (N, 17, 2), weight (N, 17): the 2D keypoints the fit follows
        (`sides_as_keypoints`), on the device to use."""
        world = sides_as_keypoints(world.detach().to(target.device, torch.float32), target, weight)
        device = target.device
        ends = torch.tensor(WORLD_BONES, device=device)
        found = torch.isfinite(world).all(dim=-1)  # (N, K)
        visibility = torch.where(found, world[..., 3].nan_to_num(0.0).clamp(0.0, 1.0), 0.0)
        weight = torch.minimum(visibility[:, ends[:, 0]], visibility[:, ends[:, 1]])  # (N, B)
        direction = bone_directions(world[..., :3].nan_to_num(0.0))
        return cls(direction, weight * (direction.norm(dim=-1) > 0.5))

    @classmethod
    def none(cls, frames: int, device: torch.device) -> WorldBones:
        """No estimate for `frames` frames (weight 0): a video without them, fitted beside one with."""
        return cls(torch.zeros(frames, len(WORLD_BONES), 3, device=device),
                   torch.zeros(frames, len(WORLD_BONES), device=device))

    def __getitem__(self, frames: slice) -> WorldBones:
        return WorldBones(self.direction[frames], self.weight[frames])

    @classmethod
    def cat(cls, parts: list[WorldBones]) -> WorldBones:
        return cls(torch.cat([p.direction for p in parts]), torch.cat([p.weight for p in parts]))


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
    videos: Videos
    world: WorldBones | None = None


def _smoothness(values: torch.Tensor, anchor: torch.Tensor | None, pairs: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Mean over consecutive frames of the squared change of values (n, ...), anchor (1, ...) first;
    with pairs (n - 1,) (`Videos.pair_mean`), the sum of each video's mean."""
    if anchor is not None:
        values = torch.cat((anchor.to(values), values))
    if values.shape[0] < 2:
        return values.new_zeros(())
    change = (values[1:] - values[:-1]).pow(2).flatten(1).sum(1)
    return change.mean() if pairs is None else (change * pairs).sum()


def _camera_code(cam: torch.Tensor) -> torch.Tensor:
    """(n, 3) (s, tx, ty) -> (n, 3) (log s, s tx, s ty): scale change and image motion of the root."""
    return torch.cat((cam[:, :1].log(), cam[:, :1] * cam[:, 1:]), dim=1)


@dataclasses.dataclass(frozen=True)
class Silhouettes:
    """Person masks for the silhouette term: mask (n, S, S) coverage in [0, 1], has_mask (n,) bool (frames
    with an empty mask are skipped), sigma of `SoftSilhouetteSettings` in squared pixels of S."""

    body: BodyModel
    mask: torch.Tensor
    has_mask: torch.Tensor
    sigma: float

    @classmethod
    def from_masks(cls, body: BodyModel, masks: torch.Tensor, size: int, sigma: float) -> Silhouettes:
        """masks (n, H, W) bool, area-averaged to size x size on the body model's device."""
        device = body.smpl.v_template.device
        coverage = F.interpolate(masks.to(device, torch.float32)[:, None], size=(size, size), mode="area")
        return cls(body, coverage[:, 0], masks.flatten(1).any(1).to(device), sigma)

    def loss(self, betas: torch.Tensor, rotations: torch.Tensor, cam: torch.Tensor, use: torch.Tensor):
        """(m,) 1 - soft IoU of the projected body and the mask for the frames where use (n,) is True;
        betas (1, S) or (n, S) (`Videos.frame_betas`), rotations (n, J, 3, 3), cam (n, 3). Returned on the
        inputs' device."""
        smpl = self.body.smpl
        device = smpl.v_template.device
        use = (use.to(device) & self.has_mask).nonzero().squeeze(1)  # (m,)
        if use.numel() == 0:
            return betas.new_zeros(0)
        betas = betas.to(device).expand(len(cam), -1)[use]
        rotations, cam = rotations.to(device)[use], cam.to(device)[use]
        vertices, _ = smplx.lbs.lbs(
            betas,
            rotations,
            smpl.v_template,
            smpl.shapedirs,
            smpl.posedirs,
            smpl.J_regressor,
            smpl.parents,
            smpl.lbs_weights,
            pose2rot=False,
        )  # (m, V, 3)
        size = self.mask.shape[-1]
        silhouette = soft_silhouette(
            weak_perspective_project(vertices, cam),
            self.body.faces,
            SoftSilhouetteSettings(size, size, self.sigma),
        )  # (m, S, S)
        mask = self.mask[use]
        overlap = (silhouette * mask).sum((1, 2))
        union = (silhouette + mask - silhouette * mask).sum((1, 2)).clamp_min(1e-6)
        return (1.0 - overlap / union).to(betas.device)


def refine(
    problem: _Problem,
    start: FitState,
    fit_betas: bool,
    history: dict[str, list[float]],
    silhouette: Silhouettes | None = None,
) -> FitState:
    """Stage 2 from a complete start state: `FitOptions.pose_iterations` Adam steps, then, with
    `silhouette`, `FitOptions.silhouette_iterations` more with the silhouette term added. The steps share
    one optimiser and one step-size schedule (a restarted Adam would move every parameter by a full step
    at once, undoing much of the fit). Returns the optimised state (detached).

    Joint angles are optimised whitened, in units of the prior's standard deviations (euler = mean +
    std * code): Adam moves every coordinate by about the same amount per step, so in these units a
    tightly held joint (collar, spine) turns a few times slower than a free one (shoulder, knee) and the
    limbs, not the torso, take up what the keypoints ask for first.
    """
    options = problem.options
    prior = problem.prior
    std = 1.0 / prior.inv_std  # (J - 1, 3) radians
    code = ((start.euler - prior.mean) * prior.inv_std).clone().requires_grad_(True)  # (n, J - 1, 3)
    delta = torch.zeros_like(start.cam, requires_grad=True)  # (n, 3): R = R_start exp(delta)
    log_scale = start.cam[:, 0].log().clone().requires_grad_(True)  # (n,)
    offset = start.cam[:, 1:].clone().requires_grad_(True)  # (n, 2)
    betas = start.betas.clone().requires_grad_(fit_betas)  # (S,) or (V, S)
    rest = [delta, log_scale, offset] + ([betas] if fit_betas else [])
    iterations = options.pose_iterations + (options.silhouette_iterations if silhouette else 0)
    groups = [(code, options.pose_lr), (rest, options.global_lr)]
    optimiser = torch.optim.Adam(
        [{"params": p if isinstance(p, list) else [p], "lr": lr} for p, lr in groups], foreach=True
    )
    videos = problem.videos
    per_frame = videos.per_frame_mean(problem.valid.to(start.cam.dtype))  # (n,)
    index = videos.index(start.cam.device)
    pairs = videos.pair_mean(start.cam.device, start.cam.dtype)  # (n - 1,) or None
    anchor = problem.anchor
    for step in range(iterations):
        decay = 0.1 + 0.45 * (1.0 + math.cos(math.pi * step / iterations))  # cosine to a tenth
        for group, (_, lr) in zip(optimiser.param_groups, groups, strict=True):
            group["lr"] = lr * decay
        optimiser.zero_grad(set_to_none=True)
        euler = prior.mean + std * code  # (n, J - 1, 3)
        rotation = start.rotation @ so3_exp(delta)  # (n, 3, 3)
        rotations = torch.cat((rotation[:, None], euler_to_matrix(euler)), dim=1)  # (n, J, 3, 3)
        cam = torch.cat((log_scale.exp()[:, None], offset), dim=1)  # (n, 3)
        frame_betas = videos.frame_betas(betas, index)  # (1 or n, S)
        keypoints = problem.skeleton(frame_betas, rotations).keypoints  # (n, K, 3)
        proj = weak_perspective_project(keypoints, cam)[..., :2]  # (n, K, 2)
        squared = ((proj - problem.target) * PX_PER_NDC).pow(2).sum(-1)  # (n, K)
        data = (problem.weight * geman_mcclure(squared, options.robust_scale)).sum(1)  # (n,)
        terms = {
            "keypoints": options.keypoint_weight * (data * per_frame).sum(),
            "prior": options.pose_prior_weight * (code.pow(2).sum((1, 2)) * per_frame).sum(),
            "limits": options.limit_weight * (prior.limits(euler) * per_frame).sum(),
            "shape": options.shape_prior_weight * shape_prior(betas).sum(),
            "smooth": options.pose_smooth_weight
            * _smoothness(euler, None if anchor is None else anchor.euler, pairs)
            + options.orient_smooth_weight
            * _smoothness(rotation, None if anchor is None else anchor.rotation, pairs)
            + options.camera_smooth_weight
            * _smoothness(_camera_code(cam), None if anchor is None else _camera_code(anchor.cam), pairs),
        }
        if problem.world is not None and options.world_weight > 0:
            cosine = (bone_directions(keypoints) * problem.world.direction).sum(-1)  # (n, B)
            bones = ((1.0 - cosine) * problem.world.weight).sum(1)  # (n,)
            terms["world"] = options.world_weight * (bones * per_frame).sum()
        prefix = "pose"
        if silhouette is not None and step >= options.pose_iterations:
            prefix = "silhouette"
            loss = silhouette.loss(frame_betas, rotations, cam, problem.valid)  # (m,)
            terms["silhouette"] = options.silhouette_weight * loss.sum() / max(loss.shape[0], 1)
        total = sum(terms.values())
        total.backward()
        optimiser.step()
        history.setdefault(f"{prefix}/total", []).append(float(total.detach()))
        for name, value in terms.items():
            history.setdefault(f"{prefix}/{name}", []).append(float(value.detach()))
    with torch.no_grad():
        return FitState(
            rotation=start.rotation @ so3_exp(delta),
            euler=prior.mean + std * code,
            cam=torch.cat((log_scale.exp()[:, None], offset), dim=1),
            betas=betas.detach().clone(),
        )


def keypoint_error(skeleton: KeypointBody, state: FitState, target: torch.Tensor, weight: torch.Tensor,
                   videos: Videos):
    """(n,) mean distance in reference pixels between the state's keypoints and the targets with weight
    > 0 (0 for a frame without any)."""
    with torch.no_grad():
        rotations = torch.cat((state.rotation[:, None], euler_to_matrix(state.euler)), dim=1)
        keypoints = skeleton(videos.frame_betas(state.betas), rotations).keypoints
        proj = weak_perspective_project(keypoints, state.cam)[..., :2]  # (n, K, 2)
        distance = ((proj - target) * PX_PER_NDC).norm(dim=-1)  # (n, K)
        used = (weight > 0).to(distance.dtype)
        return (distance * used).sum(1) / used.sum(1).clamp_min(1.0)


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
    videos: Videos | None = None,
    world: WorldBones | None = None,
) -> ChunkFit:
    """Both stages on one chunk: target (n, K, 2) NDC, weight (n, K) (0 = ignore; a frame without any
    weight is missing), anchor: the previous chunk's last frame, betas (S,) to start from (or keep);
    world: the chunk's 3D bone directions for the world term (`FitOptions.world_weight`), or None.
    videos: several short videos one after the other (`Videos`; each gets its own betas, (V, S) in the
    result); they start from the mean shape, with no anchor and no init."""
    if body.joint_names != SMPL_JOINT_NAMES:
        raise ValueError(
            f"{body.source}: fitting needs SMPL's 24-joint skeleton (its priors are written for it); "
            f"this model's joints are {body.joint_names}"
        )
    device, n = target.device, target.shape[0]
    videos = videos or Videos((n,))
    if sum(videos.lengths) != n:
        raise ValueError(f"the videos' lengths {videos.lengths} do not add up to the chunk's {n} frames")
    if videos.count > 1 and (anchor is not None or betas is not None or init is not None):
        raise ValueError("videos fitted together start afresh: no anchor, betas or init")
    prior = PosePrior().to(device)
    valid = weight.sum(1) > 0  # (n,)
    history: dict[str, list[float]] = {}
    if betas is None:
        shape = (skeleton.num_betas,) if videos.count == 1 else (videos.count, skeleton.num_betas)
        betas = torch.zeros(shape, device=device)
    init = init or FitState()
    euler = prior.mean.expand(n, -1, -1).clone() if init.euler is None else prior.clamp(init.euler)
    if not bool(valid.any()):  # nothing to fit: the previous chunk's last frame, or an upright default
        rotation = axis_angle_to_matrix(facing_camera_orient(0.0, n, device=device))
        default = FitState(rotation, euler, target.new_tensor([1.0, 0.0, 0.0]).expand(n, 3), betas)
        state = interpolate_missing(default, valid, anchor) if anchor is None else _repeat(anchor, n, betas)
        return ChunkFit(state=state, error=torch.zeros(n, device=device), loss=history)
    rotation, cam = init.rotation, init.cam
    if rotation is None:
        with torch.no_grad():
            rest_rotations = torch.cat((torch.eye(3, device=device)[None], euler_to_matrix(prior.mean)))
            mean_shape = betas.reshape(-1, betas.shape[-1])[:1]  # (1, S): a group starts from zeros
            rest = skeleton(mean_shape, rest_rotations[None])  # the mean pose, upright, facing +Z
        root = rest.joints[0, 0]  # (3,) the root does not move under the global rotation
        rotation, cam_root = search_orientation(
            rest.keypoints[0] - root,
            target,
            weight,
            body.keypoint_names,
            options,
            None if anchor is None else anchor.rotation[0],
            history,
            videos,
        )
        if cam is None:  # stage 1 projected s (R (X - root) + t'); the body model's t = t' - root
            cam = torch.cat((cam_root[:, :1], cam_root[:, 1:] - root[:2]), dim=1)
    if cam is None:
        with torch.no_grad():
            rotations = torch.cat((rotation[:, None], euler_to_matrix(euler)), dim=1)
            points = skeleton(betas[None], rotations).keypoints[..., :2]  # (n, K, 2)
            cam = camera_from_points(points, target, weight)
    state = _fill(FitState(rotation, euler, cam, betas), valid, anchor, videos)
    problem = _Problem(skeleton, prior, target, weight, valid, anchor, options, videos, world)
    targets = None
    if masks is not None and options.silhouette_weight > 0 and options.silhouette_iterations > 0:
        targets = Silhouettes.from_masks(body, masks, options.silhouette_size, options.silhouette_sigma)
    state = refine(problem, state, fit_betas, history, silhouette=targets)
    state = _fill(state, valid, anchor, videos)
    return ChunkFit(state=state, error=keypoint_error(skeleton, state, target, weight, videos), loss=history)


def _fill(state: FitState, valid: torch.Tensor, anchor: FitState | None, videos: Videos) -> FitState:
    """`interpolate_missing` within each video."""
    if videos.count == 1:
        return interpolate_missing(state, valid, anchor)
    parts = [interpolate_missing(state.slice(part), valid[part], None) for part in videos.slices()]
    return FitState.cat(parts)


def _repeat(frame: FitState, n: int, betas: torch.Tensor) -> FitState:
    """n copies of a one-frame state."""
    return FitState(
        frame.rotation.expand(n, -1, -1), frame.euler.expand(n, -1, -1), frame.cam.expand(n, -1), betas
    )
