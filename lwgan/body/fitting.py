"""Fitting a body model to the 2D keypoints of a video: `fit_video`.

All frames of a video are optimised together (one vectorised problem per chunk of `FitOptions.chunk_size`
frames), in two stages (`lwgan.body.fitting_stages`):

1. camera and global orientation: for every frame, `FitOptions.orientation_candidates` turns about the
   vertical axis are tried with the body in the prior's mean pose, each refined on the torso and face
   keypoints with its weak-perspective camera; the candidate path through the video is chosen by dynamic
   programming (fit error plus a penalty on frame-to-frame rotation), which settles front versus back
   and left versus right turns from the shoulder order, the face and the neighbouring frames;
2. full pose, shape and camera: Adam on a robust (Geman-McClure) keypoint reprojection error, the open
   pose prior and joint limits of `lwgan.body.priors`, a shape prior, temporal smoothness of pose and
   camera, and, with `silhouette_weight` > 0, a soft-silhouette IoU term against the person masks.

Body joints are parametrised by Euler angles (the priors' convention); the result is SMPL axis-angle.
Long videos are fitted chunk by chunk: the shape fitted in the first chunk with a person is kept for the
rest of the video, and each chunk starts from the previous chunk's last frame (it anchors the
orientation path and the smoothness terms).
Frames with too few confident keypoints are flagged `NO_PERSON`, take no part in any loss, and get the
pose and camera interpolated between their nearest fitted neighbours. So are frames whose fitted camera
scale jumps off their neighbours' (`IMPLAUSIBLE_SCALE`): a fit on a few keypoints along one side of a
turning body can draw it twice its size. So, under the same flag, are frames whose keypoints draw a
side of the trunk longer than the fitted body's own at their neighbours' size: a detection stretched
across the frame (a landmark model carried through a back flip against the sun) that the fit would
follow with a body lying where the person is not.

Units: keypoints are pixels (u = column, v = row, centres at integers, `lwgan.geometry`); internally they
become NDC. Errors seen by the robust loss and the convergence test are pixels of a `REFERENCE_SIZE`
image (a 512-pixel input's errors are halved), so one set of options serves every image size.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import torch

from lwgan.body.cameras import axis_angle_to_matrix
from lwgan.body.fitting_stages import Videos, WorldBones, fit_chunk
from lwgan.body.fitting_state import (
    REFERENCE_SIZE,
    TRUNK,
    ChunkFit,
    FitOptions,
    FitState,
    interpolate_missing,
    scale_outliers,
    trunk_outliers,
)
from lwgan.body.kinematics import KeypointBody
from lwgan.body.model import BodyModel
from lwgan.body.poses import matrix_to_axis_angle
from lwgan.body.priors import euler_to_matrix, matrix_to_euler
from lwgan.geometry import pixel_to_ndc

logger = logging.getLogger(__name__)

NO_PERSON = 1  # too few confident keypoints: pose and camera interpolated from neighbours
LOW_CONFIDENCE = 2  # the keypoints' mean confidence is below `FitOptions.low_confidence`
NOT_CONVERGED = 4  # the final mean reprojection error exceeds `FitOptions.converged_error`
IMPLAUSIBLE_SCALE = 8  # size or trunk off the neighbours' (max_scale_ratio, max_trunk_ratio): interpolated

__all__ = [
    "LOW_CONFIDENCE", "NOT_CONVERGED", "NO_PERSON", "REFERENCE_SIZE", "FitInit", "FitOptions", "FitResult",
    "WorldBones", "check_inputs", "fit_video", "fit_videos", "fitted_joints",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class FitInit:
    """Starting values for `fit_video` (a regressor's estimate, an earlier fit); any field may be None.

    pose: (N, J * 3) axis-angle incl. the global orientation (replaces stage 1's orientation search);
    betas: (S',) or (N, S') shape (averaged over frames, padded / cut to the model's S);
    cam: (N, 3) weak perspective (s, tx, ty) in the NDC of the fitted image.
    """

    pose: torch.Tensor | None = None
    betas: torch.Tensor | None = None
    cam: torch.Tensor | None = None


@dataclasses.dataclass(frozen=True)
class FitResult:
    """The fitted body of a video of N frames (float32 CPU tensors unless stated).

    betas: (S,) one shape for the video. pose: (N, J * 3) axis-angle per joint, joint 0 the global
    orientation (an upright person facing the camera has ~pi about x). cam: (N, 3) weak perspective
    (s, tx, ty), NDC = s * (X + t) for the posed body without translation (`lwgan.geometry`).
    status: (N,) uint8 bit flags `NO_PERSON`, `LOW_CONFIDENCE`, `NOT_CONVERGED`, `IMPLAUSIBLE_SCALE`
        (0 = fine).
    reprojection_px: (N,) mean distance in pixels of the input image between the fitted and the
    confident keypoints; NaN for NO_PERSON frames. loss: name -> per-iteration values (chunks appended;
    for videos fitted together by `fit_videos`, the group's: the sum of their losses).
    """

    betas: torch.Tensor
    pose: torch.Tensor
    cam: torch.Tensor
    status: torch.Tensor
    reprojection_px: torch.Tensor
    loss: dict[str, list[float]]


_SKELETONS: dict[int, tuple[BodyModel, KeypointBody]] = {}


def _skeleton(body: BodyModel, device: torch.device) -> KeypointBody:
    """The body's `KeypointBody`, built once per body model and device."""
    key = id(body)
    cached = _SKELETONS.get(key)
    if cached is None or cached[0] is not body:
        cached = (body, KeypointBody(body))
        _SKELETONS.clear()  # one body at a time: a pipeline fits with a single model
        _SKELETONS[key] = cached
    return cached[1].to(device)


def check_inputs(
    keypoints: torch.Tensor,
    image_size: int,
    body: BodyModel,
    masks: torch.Tensor | None,
    init: FitInit | None,
    world: torch.Tensor | None = None,
) -> None:
    """Raise a ValueError naming what is wrong with `fit_video`'s inputs."""
    if not isinstance(keypoints, torch.Tensor) or keypoints.dim() != 3 or keypoints.shape[-1] != 3:
        shape = tuple(keypoints.shape) if isinstance(keypoints, torch.Tensor) else type(keypoints).__name__
        raise ValueError(f"keypoints must be an (N, K, 3) tensor of u, v, confidence; got {shape}")
    if keypoints.shape[1] != body.num_keypoints:
        raise ValueError(
            f"keypoints have K={keypoints.shape[1]} points but the body model regresses {body.num_keypoints} "
            f"({', '.join(body.keypoint_names)})"
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int (pixels), got {image_size!r}")
    frames = keypoints.shape[0]
    if masks is not None and (masks.dim() != 3 or masks.shape[0] != frames):
        raise ValueError(f"masks must be (N={frames}, H, W), got {tuple(masks.shape)}")
    if world is not None and (not isinstance(world, torch.Tensor) or tuple(world.shape) != (frames, 17, 4)
                              or keypoints.shape[1] != 17):
        shape = tuple(world.shape) if isinstance(world, torch.Tensor) else type(world).__name__
        raise ValueError(f"world must be an (N={frames}, 17, 4) tensor of COCO-17 x, y, z, visibility beside "
                         f"COCO-17 keypoints; got {shape}")
    if init is None:
        return
    wanted = {"pose": (frames, 3 * body.num_joints), "cam": (frames, 3)}
    for name, shape in wanted.items():
        value = getattr(init, name)
        if value is not None and tuple(value.shape) != shape:
            raise ValueError(f"FitInit.{name} must have shape {shape}, got {tuple(value.shape)}")
    if init.betas is not None and init.betas.dim() not in (1, 2):
        raise ValueError(f"FitInit.betas must be (S,) or (N, S), got {tuple(init.betas.shape)}")


def _init_state(init: FitInit | None, body: BodyModel, device: torch.device) -> FitState | None:
    """FitInit -> a partial `FitState` on device (fields None where not given)."""
    if init is None:
        return None
    rotation = euler = betas = None
    if init.pose is not None:
        rotations = axis_angle_to_matrix(
            init.pose.detach().to(device, torch.float32).reshape(-1, body.num_joints, 3)
        )
        rotation, euler = rotations[:, 0], matrix_to_euler(rotations[:, 1:])  # (N, 3, 3), (N, J - 1, 3)
    if init.betas is not None:
        values = init.betas.detach().to(device, torch.float32).reshape(-1, init.betas.shape[-1]).mean(dim=0)
        betas = torch.zeros(body.num_betas, device=device)
        count = min(body.num_betas, values.shape[0])
        betas[:count] = values[:count]
    cam = None if init.cam is None else init.cam.detach().to(device, torch.float32)
    return FitState(rotation=rotation, euler=euler, cam=cam, betas=betas)


@dataclasses.dataclass(frozen=True)
class _Video:
    """One video's keypoints as the fit sees them: target (N, K, 2) NDC, weight (N, K), valid (N,) frames
    with enough keypoints, status (N,) flags known before fitting, world the 3D bone directions for the
    world term (None without an estimate or with the term off)."""

    target: torch.Tensor
    weight: torch.Tensor
    valid: torch.Tensor
    status: torch.Tensor
    world: WorldBones | None = None

    @classmethod
    def of(cls, keypoints: torch.Tensor, image_size: int, options: FitOptions,
           device: torch.device, world: torch.Tensor | None = None) -> _Video:
        keypoints = keypoints.detach().to(device, torch.float32)
        finite = torch.isfinite(keypoints[..., :2]).all(dim=-1)  # (N, K): a NaN position counts as missing
        target = pixel_to_ndc(keypoints[..., :2].nan_to_num(0.0, 0.0, 0.0), image_size, image_size)
        confidence = torch.where(finite, keypoints[..., 2].nan_to_num(0.0).clamp(0.0, 1.0), 0.0)  # (N, K)
        weight = torch.where(confidence >= options.confidence_threshold, confidence, 0.0)  # (N, K)
        valid = (weight > 0).sum(dim=1) >= options.min_keypoints  # (N,)
        status = torch.zeros(len(keypoints), dtype=torch.uint8)
        status[~valid.cpu()] |= NO_PERSON
        status[(confidence.mean(dim=1) < options.low_confidence).cpu()] |= LOW_CONFIDENCE
        weight = weight * valid[:, None]
        bones = None if world is None or options.world_weight <= 0 else WorldBones.of(world, target, weight)
        return cls(target, weight, valid, status, bones)

    @property
    def frames(self) -> int:
        return self.valid.shape[0]


# What fits some of a group's videos: (which of them, their weights, their valid frames) -> per video
# (state, error (N,) in reference pixels, loss history).
_Fitted = tuple[FitState, torch.Tensor, dict[str, list[float]]]
_Fitter = Callable[[list[int], list[torch.Tensor], list[torch.Tensor]], list[_Fitted]]


def fit_video(
    keypoints: torch.Tensor,
    image_size: int,
    body: BodyModel,
    options: FitOptions = FitOptions(),
    masks: torch.Tensor | None = None,
    init: FitInit | None = None,
    world: torch.Tensor | None = None,
) -> FitResult:
    """Fit one body shape and per-frame pose and camera to a video's 2D keypoints.

    keypoints: (N, K, 3) float pixel u (column), v (row) and confidence in [0, 1] for the body model's K
    keypoints (COCO-17 for lwgan's bodies) in images of image_size x image_size pixels.
    masks: (N, H, W) bool person masks (any H, W), used only when options.silhouette_weight > 0.
    init: optional starting values (`FitInit`).
    world: (N, 17, 4) metric 3D keypoints a detector estimated in camera axes (MediaPipe Pose's world
    landmarks: x, y, z and visibility; NaN where missing), used only when options.world_weight > 0.
    Returns a `FitResult`; never raises for frames without a person (they are flagged). Deterministic for
    the same inputs, options and torch thread count.
    """
    check_inputs(keypoints, image_size, body, masks, init, world)
    device = torch.device(options.device)
    skeleton = _skeleton(body, device)
    video = _Video.of(keypoints, image_size, options, device, world)
    start_state = _init_state(init, body, device)

    def chunk_by_chunk(_: list[int], weights: list[torch.Tensor], valids: list[torch.Tensor]):
        (weight,), (valid,) = weights, valids
        history: dict[str, list[float]] = {}
        parts: list[ChunkFit] = []
        anchor: FitState | None = None
        betas = None if start_state is None else start_state.betas
        shape_fitted = False  # the first chunk with a person fits the shape; later chunks keep it
        for start in range(0, video.frames, options.chunk_size):
            chunk = slice(start, min(start + options.chunk_size, video.frames))
            part = fit_chunk(
                skeleton=skeleton,
                body=body,
                target=video.target[chunk],
                weight=weight[chunk],
                options=options,
                anchor=anchor,
                betas=betas,
                fit_betas=not shape_fitted,
                init=None if start_state is None else start_state.slice(chunk),
                masks=None if masks is None or options.silhouette_weight <= 0 else masks[chunk],
                world=None if video.world is None else video.world[chunk],
            )
            parts.append(part)
            shape_fitted = shape_fitted or bool(valid[chunk].any())
            betas = part.state.betas
            anchor = part.state.last()
            for name, values in part.loss.items():
                history.setdefault(name, []).extend(values)
        state = FitState.cat([part.state for part in parts])
        return [(state, torch.cat([part.error for part in parts]), history)]

    return _fit_group([video], chunk_by_chunk, skeleton, image_size, options)[0]


def fit_videos(
    keypoints: Sequence[torch.Tensor],
    image_size: int,
    body: BodyModel,
    options: FitOptions = FitOptions(),
    masks: Sequence[torch.Tensor | None] | None = None,
    world: Sequence[torch.Tensor | None] | None = None,
) -> list[FitResult]:
    """`fit_video` on each of several videos, the short ones optimised together as one problem.

    Videos of at most `FitOptions.chunk_size` frames with a person in them are fitted together in groups
    of up to `chunk_size` frames (`lwgan.body.fitting_stages.Videos`): each keeps its own shape, path and
    smoothness, and its fit is `fit_video`'s to float rounding, while the per-iteration overhead, which
    dominates a short video's fit, is paid once per group. The others are fitted one by one.
    keypoints, masks, world: per video, as for `fit_video`. Returns a `FitResult` per video, in order.
    """
    masks = list(masks) if masks is not None else [None] * len(keypoints)
    world = list(world) if world is not None else [None] * len(keypoints)
    if len(masks) != len(keypoints) or len(world) != len(keypoints):
        raise ValueError(f"{len(masks)} mask stacks and {len(world)} world estimates for {len(keypoints)} "
                         "videos")
    for video, video_masks, video_world in zip(keypoints, masks, world, strict=True):
        check_inputs(video, image_size, body, video_masks, None, video_world)
    device = torch.device(options.device)
    videos = [_Video.of(video, image_size, options, device, estimate)
              for video, estimate in zip(keypoints, world, strict=True)]
    results: list[FitResult | None] = [None] * len(videos)
    groups: list[list[int]] = []
    frames = options.chunk_size
    for i, video in enumerate(videos):
        if video.frames > options.chunk_size or not bool(video.valid.any()):
            results[i] = fit_video(keypoints[i], image_size, body, options, masks[i], world=world[i])
            continue
        if frames + video.frames > options.chunk_size:
            groups.append([])
            frames = 0
        groups[-1].append(i)
        frames += video.frames
    skeleton = _skeleton(body, device)
    silhouettes = options.silhouette_weight > 0
    for group in groups:
        def together(which: list[int], weights: list[torch.Tensor], _: list[torch.Tensor], group=group):
            chosen = [group[i] for i in which]
            lengths = tuple(len(weight) for weight in weights)
            stacked = [masks[i] for i in chosen]
            bones = None
            if any(videos[i].world is not None for i in chosen):  # a video without them weighs nothing
                bones = WorldBones.cat([videos[i].world or WorldBones.none(videos[i].frames, device)
                                        for i in chosen])
            part = fit_chunk(
                skeleton=skeleton, body=body, target=torch.cat([videos[i].target for i in chosen]),
                weight=torch.cat(weights), options=options, anchor=None, betas=None, fit_betas=True,
                init=None,
                masks=torch.cat(stacked) if silhouettes and all(m is not None for m in stacked) else None,
                videos=Videos(lengths), world=bones,
            )
            out = []
            for v, frames in enumerate(Videos(lengths).slices()):
                state = part.state.slice(frames)
                betas = part.state.betas if len(lengths) == 1 else part.state.betas[v]  # (S,)
                state = FitState(state.rotation, state.euler, state.cam, betas)
                out.append((state, part.error[frames], part.loss))
            return out

        fitted = _fit_group([videos[i] for i in group], together, skeleton, image_size, options)
        for i, result in zip(group, fitted, strict=True):
            results[i] = result
    return results


def _fit_group(videos: list[_Video], fit: _Fitter, skeleton: KeypointBody, image_size: int,
               options: FitOptions) -> list[FitResult]:
    """Fit `videos` with `fit`. A frame whose size jumps off its neighbours', or whose keypoints draw a
    side of the trunk longer than the fitted body's at its neighbours' size, is then set aside and its
    video fitted again without it: through the smoothness terms it had pulled its neighbours too. A second
    verdict on the new fit sets aside (without another fit) whatever still jumps."""
    valids = [video.valid for video in videos]
    fitted = fit(list(range(len(videos))), [video.weight for video in videos], valids)

    def outliers(i: int) -> torch.Tensor:
        state, video = fitted[i][0], videos[i]
        scale = state.cam[:, 0]
        flags = scale_outliers(scale, valids[i], options.scale_window, options.max_scale_ratio)
        if options.max_trunk_ratio > 0:
            trunk = _trunk(skeleton, state.betas)
            flags |= trunk_outliers(video.target, video.weight, trunk, scale, valids[i], options.scale_window,
                                    options.max_trunk_ratio)
        return flags

    implausible = [outliers(i) for i in range(len(videos))]
    again = [i for i, flags in enumerate(implausible) if bool(flags.any())]
    if again:
        valids = [valid & ~flags for valid, flags in zip(valids, implausible, strict=True)]
        weights = [videos[i].weight * valids[i][:, None] for i in again]
        refitted = fit(again, weights, [valids[i] for i in again])
        for i, result in zip(again, refitted, strict=True):
            fitted[i] = result
            more = outliers(i)
            implausible[i], valids[i] = implausible[i] | more, valids[i] & ~more
    return [_result(video, *result, valid, flags, image_size, options)
            for video, result, valid, flags in zip(videos, fitted, valids, implausible, strict=True)]


def _trunk(skeleton: KeypointBody, betas: torch.Tensor) -> torch.Tensor:
    """(4,) the lengths of `TRUNK` on the body of shape `betas` (S,) in its rest pose (model units)."""
    joints = skeleton.rest_joints.shape[0]
    rest = torch.eye(3, device=betas.device).expand(1, joints, 3, 3)
    points = skeleton(betas.detach().reshape(1, -1).float(), rest).keypoints[0]  # (K, 3)
    return torch.stack([(points[a] - points[b]).norm() for a, b in TRUNK])


def _result(video: _Video, state: FitState, error: torch.Tensor, history: dict[str, list[float]],
            valid: torch.Tensor, implausible: torch.Tensor, image_size: int,
            options: FitOptions) -> FitResult:
    """The `FitResult` of a fitted video: missing and implausible frames interpolated, flags set."""
    status = video.status.clone()
    status[implausible.cpu()] |= IMPLAUSIBLE_SCALE
    state = interpolate_missing(state, valid, None)
    error_px = error.cpu() * (image_size / REFERENCE_SIZE)  # (N,)
    error_px[~valid.cpu()] = float("nan")
    status[(error_px > options.converged_error * image_size / REFERENCE_SIZE) & valid.cpu()] |= NOT_CONVERGED
    frames = video.frames
    rotations = torch.cat((state.rotation[:, None], euler_to_matrix(state.euler)), dim=1)  # (N, J, 3, 3)
    pose = matrix_to_axis_angle(rotations).reshape(frames, -1)  # (N, J * 3)
    logger.debug("fitted %d frames: %d without a person", frames, int((~valid).sum()))
    return FitResult(
        betas=state.betas.detach().cpu().clone(),
        pose=pose.detach().cpu().float(),
        cam=state.cam.detach().cpu().clone(),
        status=status,
        reprojection_px=error_px.float(),
        loss=history,
    )


def fitted_joints(body: BodyModel, result: FitResult) -> torch.Tensor:
    """(N, J, 3) joints of a fit in camera axes, metres, no translation (as the synthetic ground truth's
    joints3d: `BodyModel.forward(betas, pose).joints`)."""
    skeleton = _skeleton(body, torch.device("cpu"))
    rotations = axis_angle_to_matrix(result.pose.reshape(result.pose.shape[0], -1, 3))  # (N, J, 3, 3)
    with torch.no_grad():
        return skeleton(result.betas[None], rotations).joints
