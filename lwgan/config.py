"""Typed, strict parameters.

`params.yaml` is read once into frozen dataclasses. Every section is a dataclass whose fields carry their
type in the annotation and their allowed range in the field metadata:

    ``ge``/``gt``/``le``/``lt``   numeric bounds
    ``choices``                   the allowed values of a string
    ``help``                      one line shown by ``lwgan params show``

An unknown key, a value of the wrong type or a value out of range raises `ConfigError` whose message
names the key path (``train.lr_g``), the bad value and what is allowed. Defaults live here; `params.yaml`
lists every key explicitly so that DVC can track each one (a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, get_args, get_origin

import yaml

from lwgan.errors import UserError


class ConfigError(UserError, ValueError):
    """A params file or override that does not fit the schema. The message names the key path."""


def _f(default: Any, help: str = "", **meta: Any) -> Any:
    """A dataclass field with a default, a help line and validation metadata."""
    if isinstance(default, list | dict):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return dataclasses.field(default=default, metadata={"help": help, **meta})


# --------------------------------------------------------------------------------------------- sections


@dataclasses.dataclass(frozen=True)
class BodyParams:
    """The body model every geometric stage uses."""

    model: str = _f(
        "default",
        "'default' (the open body shipped with lwgan) or a path to an SMPL-format .npz/.pkl file",
    )
    extras: str = _f(
        "",
        "optional .npz with keypoint regressor / part labels / surface coordinates for a user-supplied model",
    )
    preview_size: int = _f(256, "side of the body-stage preview renders, pixels", ge=32, le=2048)
    preview_poses: int = _f(4, "number of poses in the body-stage preview sheet", ge=1, le=16)


@dataclasses.dataclass(frozen=True)
class SynthParams:
    """The embedded default data set: synthetic iPER-like videos rendered from the body model."""

    subjects: int = _f(16, "distinct people (body shape, skin tone)", ge=1, le=100)
    clothes: int = _f(2, "outfits per subject", ge=1, le=20)
    frames_per_action: int = _f(20, "frames of each video (two actions per subject and outfit)", ge=2,
                                le=5000)
    image_size: int = _f(256, "side of the rendered frames, pixels", ge=32, le=2048)
    val_subjects: int = _f(2, "subjects held out for validation (split by subject, as iPER)", ge=0)
    workers: int = _f(2, "videos rendered in parallel, one process each", ge=1, le=256)
    loose: float = _f(0.5, "share of outfits with a skirt that swings free of the legs; with it, long hair "
                      "hangs free of the head (0 = everything on the body surface)", ge=0.0, le=1.0)
    photos: float = _f(0.0, "share of videos in front of a real photograph (crops of the sample photos that "
                       "ship in scikit-image and scikit-learn) instead of a procedural background; "
                       "0 = procedural only", ge=0.0, le=1.0)
    ambient_max: float = _f(0.55, "top of the range each video draws its ambient light from (0.4 to this: "
                            "the share of the light that reaches surfaces turned away from it; 1 = up to "
                            "flat light)", ge=0.4, le=1.0)

    def validate(self, path: str) -> None:
        if self.val_subjects >= self.subjects:
            raise ConfigError(f"{path}.val_subjects: got {self.val_subjects}, must be < {path}.subjects "
                              f"({self.subjects}) so that some subjects are left for training")


@dataclasses.dataclass(frozen=True)
class DataParams:
    """Which videos the pipeline learns from, and how the prepare stage turns them into a frames cache."""

    source: str = _f("synthetic", "'synthetic' (the embedded set), 'iper' (the iPER layout: frame folders or "
                     "the release's mp4 files) or 'folder' (any folder of videos)",
                     choices=("synthetic", "iper", "folder"))
    root: str = _f("", "data root for source 'iper' or 'folder' (unused for 'synthetic')")
    image_size: int = _f(256, "side of the square person-centred frames, pixels", ge=32, le=2048)
    frame_step: int = _f(1, "keep every n-th frame", ge=1)
    max_frames_per_video: int = _f(0, "keep at most this many frames per video; 0 keeps all", ge=0)
    val_fraction: float = _f(0.2, "share of videos in the automatic validation split (no split lists)",
                             ge=0.0, lt=1.0)
    max_failure_fraction: float = _f(0.1, "the stage fails past this share of unreadable videos", ge=0.0,
                                     le=1.0)
    crop_margin: float = _f(0.15, "space around the person box, as a fraction of its longer side", ge=0.0,
                            le=2.0)
    person_box: str = _f("detector", "how a video without masks finds its person: 'detector' (people found "
                         "at the source resolution in keyframes, one followed) or 'motion' (foreground "
                         "against a temporal median; a static camera, one moving person)",
                         choices=("detector", "motion"))
    person: str = _f("largest", "the person a video is about when several are seen: 'largest' (large and "
                     "seen long), 'central', or an index '0', '1', ... (order of first appearance, left to "
                     "right)")
    crop: str = _f("auto", "'fixed' (one square per video), 'follow' (a square of one size that moves with "
                   "the detected person) or 'auto' (follow when a fixed square would be 1.5x larger)",
                   choices=("auto", "fixed", "follow"))
    pad: str = _f("constant", "fill where the crop leaves the frame: 'constant' (black) or 'edge' (repeat "
                  "the border)", choices=("constant", "edge"))
    min_person_share: float = _f(0.35, "refuse a video whose person would be less tall than this share of "
                                 "the cached frames' height (0.35 of 256 px: 90 px)", ge=0.0, le=1.0)
    codec: str = _f("jpeg", "frame storage in the cache: 'jpeg' (small) or 'lzf' (lossless)",
                    choices=("jpeg", "lzf"))
    jpeg_quality: int = _f(95, "JPEG quality of cached frames", ge=1, le=100)
    workers: int = _f(2, "videos prepared in parallel, one process each", ge=1, le=256)

    def validate(self, path: str) -> None:
        if self.person not in ("largest", "central") and not self.person.isdigit():
            raise ConfigError(f"{path}.person: {self.person!r} is not 'largest', 'central' or an index "
                              "'0', '1', ...")
        if self.source != "synthetic" and not self.root:
            raise ConfigError(f"{path}.root: empty, but {path}.source is {self.source!r}: set {path}.root to "
                              "the data set's folder")


@dataclasses.dataclass(frozen=True)
class FitParams:
    """Body-mesh recovery on every frame (the fit stage); see `lwgan.body.fitting.FitOptions` for the loss."""

    keypoints: str = _f("detector", "2D keypoint source: 'detector' (mediapipe, optional group "
                        "[detect]), 'ground_truth' (synthetic set only), 'openpose' or 'coco' (files under "
                        "fit.keypoints_root)", choices=("detector", "ground_truth", "openpose", "coco"))
    keypoints_root: str = _f("", "folder of OpenPose JSON folders / COCO files, one per video id")
    pose_iterations: int = _f(150, "Adam steps of the full-pose stage", ge=0, le=100000)
    camera_iterations: int = _f(40, "Adam steps of the camera/orientation stage", ge=0, le=100000)
    silhouette_weight: float = _f(0.0, "weight of the soft-silhouette term (0 = off)", ge=0.0)
    pose_prior_weight: float = _f(2.0, "weight of the pose prior (squared standard deviations of the joints' "
                                  "Euler angles, `lwgan.body.priors`)", ge=0.0)
    pose_smooth_weight: float = _f(100.0, "weight of the squared change of the joint angles between "
                                   "consecutive frames (README: 3000 fits full-rate video better in 3D)",
                                   ge=0.0)
    world_weight: float | Literal["auto"] = _f(
        "auto", "weight of the bones' directions in the detector's metric 3D estimate (MediaPipe's world "
        "landmarks; fit.keypoints=detector only; 0 = off); 'auto': 300 on footage, where it fits the body "
        "better in 3D, and 0 on lwgan's synthetic set, where the estimate is worse than the fit, or with "
        "keypoints from files (README)",
        ge=0.0)
    chunk_frames: int = _f(256, "frames optimised together; long videos are fitted chunk by chunk", ge=1)
    overlays_per_video: int = _f(3, "frames per video drawn with the fitted mesh", ge=0, le=100)
    detect_size: int = _f(512, "fit.keypoints=detector also detects on each frame's square cut again from "
                          "the source at this side (at most the square's own) where that is larger than the "
                          "cached frames, and keeps per frame the detection most consistent over time; 0 = "
                          "on the cached frames only", ge=0, le=4096)
    max_failure_fraction: float = _f(0.1, "the stage fails when more than this share of the videos failed "
                                     "(status 'failed', or their fit raised)", ge=0.0, le=1.0)
    # The verdict on every video (metrics/fit.json 'videos'): failed past any failed_* threshold, else poor
    # past any poor_* one, else ok. They are no part of a shard's key: changing them re-judges, never refits.
    failed_fitted_rate: float = _f(0.5, "a video fails when fewer of its frames than this have a usable fit "
                                   "(a person found, not flagged no-person or not-converged)", ge=0.0, le=1.0)
    poor_fitted_rate: float = _f(0.8, "a video is poor when fewer of its frames than this have a usable fit",
                                 ge=0.0, le=1.0)
    failed_reprojection: float = _f(0.15, "a video fails when the 95th percentile of its keypoint "
                                    "reprojection error, as a share of the body's size in the frame, exceeds "
                                    "this", ge=0.0)
    poor_reprojection: float = _f(0.05, "a video is poor when the 95th percentile of its keypoint "
                                  "reprojection error, as a share of the body's size, exceeds this", ge=0.0)
    failed_iou: float = _f(0.3, "a video fails when the median IoU of the fitted silhouette with the person "
                           "mask is below this (keypoint sources with masks only)", ge=0.0, le=1.0)
    poor_iou: float = _f(0.6, "a video is poor when the median IoU of the fitted silhouette with the person "
                         "mask is below this", ge=0.0, le=1.0)

    def validate(self, path: str) -> None:
        # (poor key, failed key, whether the poor threshold lies above the failed one)
        for poor, failed, above in (("poor_fitted_rate", "failed_fitted_rate", True),
                                    ("poor_reprojection", "failed_reprojection", False),
                                    ("poor_iou", "failed_iou", True)):
            value, limit = getattr(self, poor), getattr(self, failed)
            if (value < limit) if above else (value > limit):
                side = ">=" if above else "<="
                raise ConfigError(f"{path}.{poor}: got {value}, must be {side} {path}.{failed} ({limit}): a "
                                  "video turns poor before it fails")


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """LWGAN training (the train stage). Defaults train on two CPU cores in minutes; the paper's
    configuration is in README "Training" (image_size 256, base_width 64, res_blocks 6, d_layers 4)."""

    # networks
    image_size: int = _f(64, "side of the training images; data.image_size must be a multiple of it", ge=16,
                         le=2048)
    base_width: int = _f(16, "channels of the first G and D layers (the paper: 64)", ge=1, le=512)
    res_blocks: int = _f(2, "residual blocks at every generator bottleneck (the paper: 6)", ge=0, le=32)
    d_layers: int = _f(3, "stride-2 layers of the patch discriminator (the paper: 4, 14x14 scores at 256^2)",
                       ge=1, le=8)
    norm: str = _f("instance", "normalisation of G and D", choices=("instance", "batch", "none"))
    spectral_norm: bool = _f(False, "spectral normalisation on every discriminator convolution")
    color_head: str = _f("residual", "SID/TSF heads: residual over the warped source and the rendered mask "
                         "(an untrained G starts at the warp) or direct (the original's tanh/sigmoid)",
                         choices=("residual", "direct"))
    bg_head: str = _f("hole", "background head: hole (a residual over classical inpainting of the "
                      "source's background, bg_fill, in the hole; the known background stays the source's "
                      "own pixels), residual (that residual everywhere) or direct (the original's tanh)",
                      choices=("hole", "residual", "direct"))
    bg_fill: str = _f("harmonic", "the residual background head's base: harmonic (pull-push relaxed toward "
                      "the harmonic interpolant) or pull_push", choices=("harmonic", "pull_push"))
    attention_prior: float = _f(6.0, "residual attention heads start at sigmoid(+-this) off/on the rendered "
                                "body: 6 = 0.9975, an untrained G is the warp; 4 = 0.982", ge=0.0, le=20.0)
    tsf_detail: int = _f(0, "0, or the odd side (pixels) of a box: the transfer stream's residual colour "
                         "keeps only what is finer, so the warp's colours and shading pass through", ge=0,
                         le=63)
    init_from: str = _f("", "a checkpoint of the train stage (path) whose G and D this run starts from "
                        "instead of random weights (fine-tuning: e.g. the synthetic set's model on one's own "
                        "videos); its network params must be this run's; empty = from scratch")
    # data
    batch_size: int = _f(4, "pairs per step and process (global batch = batch_size x processes)", ge=1)
    source_frames: int = _f(15, "the source frame is drawn from the first K usable frames of a video", ge=1)
    visible_faces: bool = _f(False, "warp only through faces visible in the source (LWGAN+), not all faces")
    augment: bool = _f(True, "random horizontal flip of the pair and a shared colour jitter")
    dev_subject: str = _f("", "a training person held out of training for development runs "
                          "(benchmarks/quality.py --dev); empty = train on every training person")
    shuffle_channels: bool = _f(False, "with augment: a random RGB channel order shared by the pair, so G "
                                "takes colours from the source instead of learning the training people's")
    hue_rotation: bool = _f(False, "with augment: a random rotation of hue about the grey axis (luma and "
                            "saturation kept) shared by the pair, after shuffle_channels when both are on")
    recolour_share: float = _f(1.0, "the share of pairs that shuffle_channels / hue_rotation recolour; the "
                               "others keep the training people's colours", ge=0.0, le=1.0)
    pairs_per_epoch: int = _f(0, "pairs that make one epoch; 0 = every usable target frame once", ge=0)
    workers: int = _f(2, "DataLoader worker processes (0 = load in the training process)", ge=0, le=64)
    # optimisation
    epochs_constant: float = _f(1.0, "epochs at the initial learning rates (the original: 5)", ge=0.0)
    epochs_decay: float = _f(1.0, "epochs of linear decay to final_lr after them (the original: 25)", ge=0.0)
    lr_g: float = _f(2e-4, "Adam learning rate of G (TTUR: differs from lr_d)", gt=0.0)
    lr_d: float = _f(2e-4, "Adam learning rate of D", gt=0.0)
    final_lr: float = _f(2e-6, "learning rate of G and D at the end of the decay (the paper's eta_F)", ge=0.0)
    betas_g: tuple[float, float] = _f((0.5, 0.999), "Adam betas of G", ge=0.0, lt=1.0)
    betas_d: tuple[float, float] = _f((0.5, 0.999), "Adam betas of D", ge=0.0, lt=1.0)
    g_ema: float = _f(0.0, "decay of a moving average of G's weights that the checkpoint gives to inference "
                      "(0 = off, the original: the last weights; e.g. 0.99)", ge=0.0, lt=1.0)
    g_every: int = _f(1, "G is updated every n-th step", ge=1)
    d_every: int = _f(1, "D is updated every n-th step", ge=1)
    # losses
    lambda_adv: float = _f(1.0, "weight of G's adversarial (LSGAN) loss", ge=0.0)
    lambda_rec: float = _f(10.0, "weight of the source reconstruction L1", ge=0.0)
    lambda_tsf: float = _f(10.0, "weight of the transfer perceptual loss (VGG relu1_1..relu5_1)", ge=0.0)
    lambda_face: float = _f(5.0, "weight of the face-identity loss on head crops", ge=0.0)
    lambda_mask: float = _f(1.0, "weight of the attention-mask BCE", ge=0.0)
    lambda_smooth: float = _f(1.0, "weight of the attention total variation", ge=0.0)
    lambda_style: float = _f(0.0, "weight of the Gram style loss (0 = off, as the original)", ge=0.0)
    lambda_tsf_l1: float = _f(200.0, "weight of an L1 between the synthesised and the real target (0 = off, "
                              "as the original)", ge=0.0)
    tsf_l1_body: float = _f(3.0, "how many times a pixel of the target's rendered body counts in that L1 "
                            "against one of the background (1 = a plain L1)", ge=0.0)
    real_target: float = _f(1.0, "one-sided label smoothing: D's target for reals (e.g. 0.9); 1 = off",
                            gt=0.0,
                            le=1.0)
    gp_weight: float = _f(0.0, "gradient penalty weight (0 = off; the paper tried 2 and 10)", ge=0.0)
    perceptual_net: str = _f("vgg16", "network of the perceptual loss: vgg16 (weights from `make weights`) "
                             "or vgg19 (the original's; give its torchvision weights)",
                             choices=("vgg16", "vgg19"))
    vgg_weights: str = _f("data/weights/vgg16.pth", "torchvision vgg16 / vgg19 .pth of perceptual_net "
                          "(path or URL)")
    perceptual_norm: str = _f("relative", "perceptual distances divided by the real features' mean "
                              "magnitude per layer (relative) or raw as the original (none)",
                              choices=("relative", "none"))
    face_net: str = _f("dlib", "network of the face-identity loss: dlib (face ResNet, from `make weights`) "
                       "or sphere20a (the original's SphereFace; give its weights)",
                       choices=("dlib", "sphere20a"))
    face_weights: str = _f("data/weights/dlib_face.pth", "weights of face_net (path)")
    substitute_nets: bool = _f(False, "train on randomly initialised feature networks where weights are "
                               "missing (stated in every record); false = a missing network is an error")
    feature_bf16: str = _f("auto", "the perceptual and face networks' precision: 'bfloat16' (autocast), "
                           "'float32', or 'auto' (bfloat16 where it is native: CUDA, or a CPU with bfloat16 "
                           "instructions)", choices=("auto", "bfloat16", "float32"))
    # run
    device: str = _f("auto", "'auto' (CUDA when present), 'cpu' or 'cuda'", choices=("auto", "cpu", "cuda"))
    bf16: bool = _f(True, "bfloat16 autocast and channels_last on CUDA (ignored on the CPU)")
    threads: int = _f(0, "torch threads of each process on the CPU; 0 = all cores / processes", ge=0)
    max_steps: int = _f(0, "stop after this many steps (0 = the epochs decide)", ge=0)
    checkpoint_every: int = _f(200, "steps between checkpoints (one is always written at the end)", ge=1)
    log_every: int = _f(1, "steps averaged into one tracked value of every loss term", ge=1)
    sample_every: int = _f(200, "steps between sample grids", ge=1)
    samples: int = _f(4, "pairs in a sample grid", ge=1, le=32)

    def validate(self, path: str) -> None:
        if self.image_size % 8:
            raise ConfigError(f"{path}.image_size: got {self.image_size}, must be a multiple of 8 (the "
                              "generator halves it three times)")
        if self.image_size // 2**self.d_layers < 3:
            raise ConfigError(f"{path}.d_layers: got {self.d_layers}, leaves no discriminator output at "
                              f"{path}.image_size={self.image_size} (image_size / 2**d_layers must be >= 3)")
        if self.epochs_constant + self.epochs_decay <= 0 and self.max_steps == 0:
            raise ConfigError(f"{path}.epochs_constant + {path}.epochs_decay is 0 and {path}.max_steps is 0: "
                              "nothing to train")
        detail = self.tsf_detail
        if detail and (detail < 3 or detail % 2 == 0 or self.color_head != "residual"):
            raise ConfigError(f"{path}.tsf_detail: got {self.tsf_detail}, must be 0 or an odd box side >= 3, "
                              f"and needs {path}.color_head residual (it is {self.color_head!r})")
        if self.final_lr > min(self.lr_g, self.lr_d):
            raise ConfigError(f"{path}.final_lr: got {self.final_lr}, must not exceed lr_g ({self.lr_g}) or "
                              f"lr_d ({self.lr_d}): the schedule decays towards it")


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    """The evaluate stage: self-imitation on the validation videos."""

    max_frames_per_video: int = _f(0, "targets per validation video, spread evenly; 0 = every usable frame",
                                   ge=0)
    batch_size: int = _f(8, "pairs per generator pass", ge=1)
    device: str = _f("auto", "'auto' (CUDA when present), 'cpu' or 'cuda'", choices=("auto", "cpu", "cuda"))
    fps: float = _f(15.0, "frame rate of the side-by-side videos", gt=0.0, le=120.0)
    lpips_net: str = _f("alex", "LPIPS backbone (the package's default: alex)", choices=("alex", "vgg"))
    lpips_backbone: str = _f("data/weights/alexnet.pth", "torchvision alexnet / vgg16 checkpoint (path or "
                             "URL); empty = no LPIPS, said in eval.json")
    lpips_linear: str = _f("data/weights/lpips_alex.pth", "LPIPS v0.1 linear layers of lpips_net (the lpips "
                           "package's weights/v0.1/<net>.pth layout); empty = no LPIPS")
    feature_weights: str = _f("data/weights/efficientnet_lite0.pth", "EfficientNet-Lite0 (ImageNet) whose "
                              "pooled features give the Frechet distance and KID of cross-imitation; empty = "
                              "not computed")
    inception_weights: str = _f("", "FID Inception weights pt_inception-2015-12-05 (path or URL); empty = no "
                                "FID / Inception Score")
    background: str = _f("auto", "what LWGAN puts where the source's body was: learned (the background "
                         "stream), fill (its classical base alone, train.bg_fill) or auto (fill for a model "
                         "trained on the synthetic set scored on real footage, else learned)",
                         choices=("auto", "learned", "fill"))


@dataclasses.dataclass(frozen=True)
class RayParams:
    """Where the parallel stages run."""

    address: str = _f("", "Ray cluster address (e.g. 'ray://head:10001' or 'auto'); empty = local")
    workers: int = _f(2, "worker processes (one video at a time each)", ge=1, le=4096)
    enabled: bool = _f(True, "false runs the same work in the stage's own process, without Ray")


@dataclasses.dataclass(frozen=True)
class TrackingParams:
    """Where and how stage runs are tracked (MLflow)."""

    experiment: str = _f("lwgan", "MLflow experiment that every stage run is logged to")
    enabled: bool = _f(True, "log to MLflow at all (metrics files are written either way)")
    variant: str = _f("", "a label for the experiment this run belongs to (letters, digits, '_', '-', '.'; "
                      "empty = none): tags every MLflow run lwgan.variant; a param of the train and evaluate "
                      "stages. The paper's experiments use their names (`lwgan experiments list`), which "
                      "`lwgan report` tabulates", pattern=r"[A-Za-z0-9_.-]*")


@dataclasses.dataclass(frozen=True)
class Params:
    """All parameters of the pipeline; one attribute per params.yaml section."""

    seed: int = _f(0, "global random seed", ge=0)
    body: BodyParams = dataclasses.field(default_factory=BodyParams)
    synth: SynthParams = dataclasses.field(default_factory=SynthParams)
    data: DataParams = dataclasses.field(default_factory=DataParams)
    fit: FitParams = dataclasses.field(default_factory=FitParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    evaluate: EvaluateParams = dataclasses.field(default_factory=EvaluateParams)
    ray: RayParams = dataclasses.field(default_factory=RayParams)
    tracking: TrackingParams = dataclasses.field(default_factory=TrackingParams)

    def validate(self, path: str) -> None:
        if self.data.image_size % self.train.image_size:
            raise ConfigError(f"train.image_size: got {self.train.image_size}, must divide data.image_size "
                              f"({self.data.image_size}): training images are the cached frames reduced "
                              "by an integer factor")


# ------------------------------------------------------------------------------------------- validation


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return "a list [" + ", ".join(_type_name(a) for a in args) + "]"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against the annotation `tp`; return it in canonical form (lists become tuples)."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _convert(value, arg, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: got {value!r}, expected {_type_name(tp)}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: got {value!r}, expected {_type_name(tp)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: got {value!r}, expected {_type_name(tp)}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: got {len(value)} items, expected {_type_name(tp)}")
        return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{path}: got {value!r}, expected null")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: got {value!r}, expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: got {value!r}, expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: got {value!r}, expected a number")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: got {value!r}, expected a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: got {value!r}, expected a string")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {path}")


def _check_range(value: Any, meta: Mapping[str, Any], path: str) -> None:
    if value is None:
        return
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if "choices" in meta and item not in meta["choices"]:
            allowed = ", ".join(repr(c) for c in meta["choices"])
            raise ConfigError(f"{path}: got {item!r}, allowed: {allowed}")
        if "pattern" in meta and isinstance(item, str) and not re.fullmatch(meta["pattern"], item):
            raise ConfigError(f"{path}: got {item!r}, must match {meta['pattern']}")
        if not isinstance(item, int | float) or isinstance(item, bool):
            continue
        for key, ok, word in (
            ("ge", lambda v, b: v >= b, ">="),
            ("gt", lambda v, b: v > b, ">"),
            ("le", lambda v, b: v <= b, "<="),
            ("lt", lambda v, b: v < b, "<"),
        ):
            if key in meta and not ok(item, meta[key]):
                raise ConfigError(f"{path}: got {item!r}, must be {word} {meta[key]}")


def _build(cls: type, data: Any, path: str) -> Any:
    where = path or "params"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: got {data!r}, expected a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"{key}: unknown key; allowed keys in {where}: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, field in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in data:
            continue
        value = _convert(data[name], hints[name], key)
        _check_range(value, field.metadata, key)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(path)
    return obj


def from_dict(data: Mapping[str, Any]) -> Params:
    """Build `Params` from a nested mapping, raising `ConfigError` on the first problem."""
    return _build(Params, data, "")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading floats as YAML 1.2 does: DVC's ``-S train.final_lr=0.00001`` writes
    ``1e-05``, which YAML 1.1 (PyYAML's default) reads as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_yaml(text: str | IO[str]) -> Any:
    """YAML text (or an open stream) as plain data, floats read as YAML 1.2 reads them (``1e-05`` and
    ``5e-5`` are numbers)."""
    return yaml.load(text, Loader=_Loader)


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """["train.lr_g=1e-4", ...] -> {"train.lr_g": 1e-4}, the overrides `load` takes; values are read as
    YAML 1.2 scalars. A malformed item is a ValueError naming it."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"{item!r}: expected SECTION.KEY=VALUE, e.g. train.lr_g=1e-4")
        out[key] = parse_yaml(value)
    return out


def read_yaml(path: str | Path) -> Any:
    """A YAML file as plain data, floats read as YAML 1.2 reads them (``1e-05`` is a number)."""
    with open(path) as handle:
        return parse_yaml(handle)


def load(path: str | Path = "params.yaml", overrides: Mapping[str, Any] | None = None) -> Params:
    """Read a params YAML file (plus dotted-key overrides, e.g. ``{"train.lr_g": 1e-4}``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = read_yaml(path)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a params file (binary, not YAML text)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        raise ConfigError(f"{path}: the params file is empty; write the sections to change (`lwgan params "
                          "show` lists every key) or give no --params to use the defaults")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: cannot override inside a non-mapping value")
        node[leaf] = value
    try:
        return from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def to_dict(params: Any) -> dict[str, Any]:
    """The nested plain-dict form of a params dataclass (tuples become lists), e.g. for checkpoints."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return plain(params)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; used for tracking and for comparing runs."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def describe(cls: type = Params, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(key path, type, default, help) for every leaf parameter, in declaration order."""
    rows: list[tuple[str, str, Any, str]] = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key + "."))
            continue
        meta = field.metadata
        bounds = [f"{word} {meta[k]}" for k, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                  if k in meta]
        if "choices" in meta:
            bounds.append("one of " + ", ".join(map(repr, meta["choices"])))
        if "pattern" in meta:
            bounds.append(f"matching {meta['pattern']}")
        type_text = _type_name(tp) + (f" ({', '.join(bounds)})" if bounds else "")
        rows.append((key, type_text, field.default, meta.get("help", "")))
    return rows
