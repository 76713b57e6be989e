"""The state `lwgan.body.fitting` optimises, and the small pieces both fitting stages share.

Body joints are held as Euler angles in the convention of `lwgan.body.priors`, the global orientation
as a rotation matrix, the camera as HMR's weak perspective (s, tx, ty) (`lwgan.geometry`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from lwgan.body.poses import matrix_to_axis_angle

# `fit.world_weight: auto` on footage. Against the other two cameras' triangulation of the three calibrated
# real clips (benchmarks/fit_views.py) 300 lowers every camera's PA-MPJPE and camera-frame error; on the
# synthetic set's rendered people MediaPipe's 3D estimate is further off than the fit, and 'auto' is 0.
WORLD_WEIGHT_FOOTAGE = 300.0


def world_weight(value: float | str, footage: bool) -> float:
    """The world term's weight `fit.world_weight` gives: a number as it is; 'auto' `WORLD_WEIGHT_FOOTAGE`
    on footage fitted to the detector's keypoints (iPER, a folder of videos, a user's photo or video) and
    0 otherwise (lwgan's synthetic set; keypoints from files, which carry no 3D estimate)."""
    if value == "auto":
        return WORLD_WEIGHT_FOOTAGE if footage else 0.0
    return float(value)


REFERENCE_SIZE = 256  # pixel errors are measured as if the image were this many pixels wide
PX_PER_NDC = REFERENCE_SIZE / 2.0  # NDC -> reference pixels


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How to fit. The defaults were tuned on the synthetic default data set (256 x 256, ground-truth
    keypoints with visibility as confidence): PA-MPJPE ~22 mm over its 24 joints at ~12 ms per frame on
    one core. "Reference pixels" are pixels of a `REFERENCE_SIZE` image (`lwgan.body.fitting`'s docstring).

    Stage 1, orientation and camera per frame:
        camera_iterations, camera_lr: Adam steps and step size for every candidate;
        orientation_candidates: turns about the vertical axis tried per frame, evenly spaced over 360 deg;
        turn_penalty: cost (squared reference pixels) of a squared radian of turn between two frames on the
            candidate path.
    Stage 2, everything:
        pose_iterations: Adam steps (cosine decay of the step size to a tenth);
        pose_lr: step size of the joint angles, in standard deviations of the pose prior;
        global_lr: step size of the global rotation (radians), the log camera scale, the camera offset and
            the betas.
    Loss weights (each term is a mean over frames):
        keypoint_weight: Geman-McClure reprojection error (squared reference pixels, confidence-weighted);
        robust_scale: its scale in reference pixels (a keypoint off by far more costs ~robust_scale^2);
        pose_prior_weight: squared standard deviations of the Euler-angle prior (`lwgan.body.priors`);
        limit_weight: squared radians beyond a joint limit;
        shape_prior_weight: squared norm of the betas;
        pose_smooth_weight, orient_smooth_weight, camera_smooth_weight: squared change between consecutive
            frames of the joint angles (radians), of the global rotation matrix and of the camera (log
            scale and NDC offset of the root);
        world_weight: 1 - cos of the angle between each bone of `WORLD_BONES` on the body and in the
            metric 3D keypoints a detector estimated (MediaPipe Pose's world landmarks, `world` of
            `fit_video`), summed over the bones, visibility-weighted (0 = off; no effect without them):
            the depth the 2D keypoints leave open (an arm along the camera's line of sight);
        silhouette_weight: 1 - soft IoU of the body and the mask (0 = off); the term runs in
            silhouette_iterations more steps after stage 2, on silhouette_size x silhouette_size masks,
            with the soft edge silhouette_sigma (squared pixels: small, a body has many faces per pixel).
    Keypoints and flags:
        confidence_threshold: keypoints below it are ignored;
        min_keypoints: fewer confident keypoints than this = NO_PERSON;
        low_confidence: mean confidence below it = LOW_CONFIDENCE;
        converged_error: final mean error above it (reference pixels) = NOT_CONVERGED;
        max_scale_ratio: a fitted frame whose camera scale (the person's size in the image) is more than
            this factor off the median of the fitted frames within scale_window frames either side (three
            or more of them) = IMPLAUSIBLE_SCALE, and its pose and camera are interpolated as for
            NO_PERSON: a person does not double in size between frames, a fit on a few keypoints along one
            side of the body can (0 = off);
        max_trunk_ratio: a fitted frame whose confident keypoints draw a side of the trunk (a shoulder
            to the hip below it, shoulder to shoulder, hip to hip) more than this factor longer than the
            body's own (its fitted shape, rest pose) at the median camera scale of the other fitted frames
            within scale_window frames either side (two or more of them) = IMPLAUSIBLE_SCALE too: the
            trunk is nearly rigid, so it can look shorter than it is, never longer, and such keypoints
            are a detection stretched across the frame, which the fit would follow with a body lying
            where the person is not (COCO-17 keypoints only; 0 = off).
    chunk_size: frames optimised together (memory grows linearly with it).
    device: torch device of the optimisation (the silhouette term runs on the body model's device).
    """

    camera_iterations: int = 40
    camera_lr: float = 0.05
    orientation_candidates: int = 8
    turn_penalty: float = 40.0
    pose_iterations: int = 150
    pose_lr: float = 0.4
    global_lr: float = 0.04
    keypoint_weight: float = 1.0
    pose_prior_weight: float = 2.0
    limit_weight: float = 2000.0
    shape_prior_weight: float = 5.0
    pose_smooth_weight: float = 100.0
    orient_smooth_weight: float = 100.0
    camera_smooth_weight: float = 1000.0
    world_weight: float = 0.0
    silhouette_weight: float = 0.0
    silhouette_iterations: int = 20
    silhouette_size: int = 64
    silhouette_sigma: float = 0.02
    robust_scale: float = 20.0
    confidence_threshold: float = 0.1
    min_keypoints: int = 5
    low_confidence: float = 0.4
    converged_error: float = 8.0
    max_scale_ratio: float = 1.3
    max_trunk_ratio: float = 1.3
    scale_window: int = 7
    chunk_size: int = 256
    device: str = "cpu"

    @classmethod
    def from_params(cls, fit: Any, *, footage: bool) -> FitOptions:
        """The options the ``fit`` params section sets (`lwgan.config.FitParams`), the others at their
        defaults: what the fit stage and the commands that fit a user's photos and videos run.
        footage: whether `world_weight` 'auto' turns the world term on (`world_weight`)."""
        return cls(pose_iterations=fit.pose_iterations, camera_iterations=fit.camera_iterations,
                   silhouette_weight=fit.silhouette_weight, chunk_size=fit.chunk_frames,
                   pose_prior_weight=fit.pose_prior_weight, pose_smooth_weight=fit.pose_smooth_weight,
                   world_weight=world_weight(fit.world_weight, footage))

    def __post_init__(self) -> None:
        positive_ints = ("orientation_candidates", "min_keypoints", "chunk_size", "silhouette_size",
                         "scale_window")
        for name in positive_ints + ("camera_iterations", "pose_iterations", "silhouette_iterations"):
            value = getattr(self, name)
            low = 1 if name in positive_ints else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"FitOptions.{name} must be an integer >= {low}, got {value!r}")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "float" and not (
                isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            ):
                raise ValueError(f"FitOptions.{field.name} must be a number >= 0, got {value!r}")
        for name in ("camera_lr", "pose_lr", "global_lr", "robust_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FitOptions.{name} must be > 0, got {getattr(self, name)!r}")


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


def _window_medians(values: torch.Tensor, valid: torch.Tensor, window: int,
                    own: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """For each valid frame: the median of `values` (n,) over the valid frames within `window` frames
    either side (the frame itself among them when `own`) and how many there are; NaN and 0 elsewhere.
    Returned on the CPU in float64."""
    ok = valid.cpu()
    values = values.detach().double().cpu()
    medians = torch.full(values.shape, float("nan"), dtype=torch.float64)
    counts = torch.zeros(values.shape, dtype=torch.long)
    for i in torch.nonzero(ok).flatten().tolist():
        lo, hi = max(0, i - window), min(len(ok), i + window + 1)
        near = ok[lo:hi].clone()
        near[i - lo] = own
        counts[i] = int(near.sum())
        if counts[i]:
            medians[i] = values[lo:hi][near].median()
    return medians, counts


def scale_outliers(scale: torch.Tensor, valid: torch.Tensor, window: int, max_ratio: float) -> torch.Tensor:
    """(n,) bool: valid frames whose scale (n,) is more than `max_ratio` times off (either way) the median
    of the valid frames within `window` frames either side, itself included, where there are at least three
    of them. None flagged when max_ratio is 0."""
    if max_ratio <= 0:
        return torch.zeros_like(valid)
    log_scale = scale.detach().double().clamp_min(1e-12).log().cpu()
    medians, counts = _window_medians(log_scale, valid, window, own=True)
    out = valid.cpu() & (counts >= 3) & ((log_scale - medians).abs() > math.log(max_ratio))
    return out.to(valid.device)


TRUNK = ((5, 11), (6, 12), (5, 6), (11, 12))  # COCO-17: each shoulder to its hip, shoulders, hips


def trunk_outliers(target: torch.Tensor, weight: torch.Tensor, trunk: torch.Tensor, scale: torch.Tensor,
                   valid: torch.Tensor, window: int, max_ratio: float) -> torch.Tensor:
    """(n,) bool: valid frames whose keypoints draw a side of the trunk longer than the body's at their
    neighbours' size (`FitOptions.max_trunk_ratio`).

    target: (n, 17, 2) NDC keypoints; weight: (n, 17), 0 = not confident; trunk: (4,) the body's own
    lengths of `TRUNK` (model units); scale: (n,) fitted weak-perspective scales (NDC per model unit), so
    that a segment of length L parallel to the image spans at most scale * L. A frame is judged against the
    median scale of the other valid frames within `window` frames either side (two or more of them), never
    its own, which a stretched detection inflates. None flagged when max_ratio is 0.
    """
    if max_ratio <= 0 or target.shape[1] != 17:
        return torch.zeros_like(valid)
    drawn = torch.stack([(target[:, a] - target[:, b]).norm(dim=-1) for a, b in TRUNK], dim=1)  # (n, 4)
    seen = torch.stack([(weight[:, a] > 0) & (weight[:, b] > 0) for a, b in TRUNK], dim=1)  # (n, 4)
    ratio = torch.where(seen, drawn / trunk.to(drawn).clamp_min(1e-9), 0.0).amax(dim=1)  # (n,) NDC per unit
    ratio = ratio.detach().double().cpu()
    medians, counts = _window_medians(scale, valid, window, own=False)
    out = valid.cpu() & (ratio > 0) & (counts >= 2) & (ratio > max_ratio * medians)
    return out.to(valid.device)


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


def camera_from_points(points: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
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
