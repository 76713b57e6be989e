"""Training pairs of LWGAN, read from the caches the pipeline builds (frames, SMPL fits, correspondence).

An item is a (source, target) pair of frames of one video: both images, both conditioning maps, their head
boxes and the transformation flow T that samples the source image at every target pixel. As in the
original LWGAN, the target is any usable frame of the video and the source is drawn uniformly from the
first `PairOptions.source_frames` (K) usable frames of the same video (it may be the target itself, an
identity pair). A frame is usable when its SMPL status has none of the bits of `PairOptions.skip_status`
(`lwgan.body.fitting`: NO_PERSON and IMPLAUSIBLE_SCALE by default).

Determinism. ``dataset[(epoch, index)]`` is a pure function of (seed, epoch, index): every random choice
comes from ``np.random.default_rng([seed, epoch, index])`` and is drawn in a fixed order (source, flip,
colour jitter), see `PairDataset.draw`. With `StepBatchSampler`, whose keys are a pure function of the
step, a resumed run reads exactly the batches the uninterrupted run would have read.

Resolution. Records are read at the cache side; images and conditioning maps are area-averaged to
`PairOptions.image_size` (an integer factor, so every output pixel averages a whole block). The flow is
computed at the cache side by one gather (`lwgan.warp.flow.flow`) and brought down with `resize_flow`,
which keeps OUTSIDE where less than half a pixel's footprint corresponds. The conditioning map's
background channel is thresholded back to {0, 1}: a pixel is body when at least half of its footprint is
(the same rule as the flow's validity), and its surface code is the mean over the body part of the
footprint (0 on background), so codes at the silhouette are not darkened by the background's zeros.

Augmentation (``augment=True``), the same for source and target so that the pair stays consistent:

- horizontal flip with p = 0.5 of the whole pair, done on the records before the flow: images,
  conditioning maps, face index and barycentric maps are mirrored, projected vertices get x -> -x and
  head boxes (x0, x1) -> (-x1, -x0). Barycentrics are affine-invariant, so the mirrored records are
  exactly those of the mirrored geometry and the flow stays exact. The surface codes keep naming the
  mesh's own parts (a flipped person is a mirror-world body); that is consistent within the pair, which
  is all the generator sees.
- colour jitter: brightness, contrast and saturation factors uniform in [0.9, 1.1] and a per-channel
  gain uniform in [0.95, 1.05], clipped to [-1, 1]. Contrast pivots on mid-grey, not on each image's
  mean, so the jitter is one per-pixel colour map shared by both images: a body point keeps matching
  colours in source and target and warping the source still reproduces the target.
- channel shuffle (``shuffle_channels=True``, drawn after the jitter): one of the six orders of the RGB
  channels, the same for both images. A handful of training people become six times as many colourings,
  so the generator cannot learn a person's colours and has to take them from the source.
- hue rotation (``hue_rotation=True``, drawn after the shuffle): a rotation by an angle uniform in
  [-pi, pi) of the chroma plane (I, Q) of the YIQ space about the grey axis, the same for both images:
  luma and saturation are kept, every hue turns (a white shirt stays white, skin turns any hue).
- ``recolour_share`` < 1: only that share of the pairs is recoloured by the two above (one uniform draw
  before them); the others keep their colours, so the generator still sees the training people's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from lwgan.body.fitting import IMPLAUSIBLE_SCALE, NO_PERSON
from lwgan.body.model import BodyModel
from lwgan.correspond.maps import MIRROR_FACE, Correspondence, face_keypoints, face_regressor
from lwgan.correspond.maps_cache import MapsCache
from lwgan.data.cache import FramesCache
from lwgan.data.errors import DataError
from lwgan.data.smpl_cache import SmplCache
from lwgan.nets.masks import resize_cond
from lwgan.warp.flow import flow, resize_flow

SPLITS = ("train", "val", "all", "dev")
JITTER_RANGE = 0.1  # brightness, contrast and saturation factors in [1 - r, 1 + r]
GAIN_RANGE = 0.05  # per-channel gain in [1 - r, 1 + r]
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights for the saturation's grey
RGB_TO_YIQ = np.array([LUMA,  # NTSC YIQ (FCC): luma, then the chroma plane (I, Q)
                       [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]])
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


def hue_matrix(angle: float) -> np.ndarray:
    """The 3x3 RGB map that rotates the YIQ chroma plane by `angle` radians, keeping luma (grey stays)."""
    c, s = np.cos(angle), np.sin(angle)
    rotate = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return YIQ_TO_RGB @ rotate @ RGB_TO_YIQ


@dataclasses.dataclass(frozen=True)
class PairOptions:
    """Which pairs and how: see the module docstring for the source rule and the augmentation."""

    image_size: int  # S, the side of the training images; the cache side must be a multiple of it
    source_frames: int = 15  # K: the source is one of the first K usable frames of the video
    visible_faces: bool = False  # flow only through faces visible in the source
    augment: bool = False  # flip and colour jitter
    shuffle_channels: bool = False  # with augment: a random RGB order shared by source and target
    hue_rotation: bool = False  # with augment: a random rotation of hue shared by source and target
    recolour_share: float = 1.0  # the share of pairs that shuffle_channels / hue_rotation recolour
    split: str = "train"  # "train" | "val" | "all" | "dev"
    dev_subject: str = ""  # a training person held out: "train" then omits, and "dev" is only, its videos
    seed: int = 0
    skip_status: int = NO_PERSON | IMPLAUSIBLE_SCALE  # frames whose SMPL status has any of these: unused

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.split == "dev" and not self.dev_subject:
            raise ValueError("split 'dev' needs dev_subject: the training person held out for development")
        if self.image_size < 1 or self.source_frames < 1 or self.seed < 0:
            raise ValueError(f"image_size and source_frames must be >= 1 and seed >= 0, got "
                             f"{self.image_size}, {self.source_frames} and {self.seed}")


@dataclasses.dataclass(frozen=True)
class ColorJitter:
    """A per-pixel colour map: brightness, contrast (about mid-grey), saturation, per-channel gain, then
    the channels in the order `channels` (output channel i = input channel channels[i]), then the hue
    rotated by `hue` radians (`hue_matrix`)."""

    brightness: float
    contrast: float
    saturation: float
    gain: tuple[float, float, float]
    channels: tuple[int, int, int] = (0, 1, 2)
    hue: float = 0.0

    @classmethod
    def draw(cls, rng: np.random.Generator, shuffle_channels: bool = False, hue_rotation: bool = False,
             recolour_share: float = 1.0) -> ColorJitter:
        """The factors, then (when asked) the recolouring, from `rng`: the draws of the options that are
        off are not made, so each option leaves the draws before it as they were."""
        b, c, s = (float(v) for v in rng.uniform(1 - JITTER_RANGE, 1 + JITTER_RANGE, size=3))
        g = rng.uniform(1 - GAIN_RANGE, 1 + GAIN_RANGE, size=3)
        recolour = shuffle_channels or hue_rotation
        if recolour and recolour_share < 1.0:
            recolour = bool(rng.random() < recolour_share)
        order = tuple(int(i) for i in rng.permutation(3)) if recolour and shuffle_channels else (0, 1, 2)
        hue = float(rng.uniform(-np.pi, np.pi)) if recolour and hue_rotation else 0.0
        return cls(b, c, s, (float(g[0]), float(g[1]), float(g[2])), order, hue)  # type: ignore[arg-type]

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) float in [-1, 1] -> the same shape, jittered and clipped to [-1, 1]."""
        x = (image + 1.0) * (0.5 * self.brightness)  # [0, 1] scaled
        x = (x - 0.5) * self.contrast + 0.5
        luma = torch.tensor(LUMA, dtype=x.dtype, device=x.device)
        grey = torch.einsum("...chw,c->...hw", x, luma).unsqueeze(-3)  # (..., 1, H, W)
        x = grey + self.saturation * (x - grey)
        x = x * torch.tensor(self.gain, dtype=x.dtype, device=x.device)[:, None, None]
        if self.channels != (0, 1, 2):
            x = x[..., list(self.channels), :, :]
        if self.hue != 0.0:
            mix = torch.tensor(hue_matrix(self.hue), dtype=x.dtype, device=x.device)
            x = torch.einsum("ij,...jhw->...ihw", mix, x)
        return (2.0 * x - 1.0).clamp(-1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class PairDraw:
    """The random choices of one item: maps rows of the pair in `video`, flip and colour jitter."""

    video: str
    src: int
    tgt: int
    flip: bool
    jitter: ColorJitter | None


class PairDataset(Dataset):
    """(source, target) pairs of the split's videos; ``dataset[(epoch, index)]`` or ``dataset[index]``.

    Item (float32 unless noted, S = options.image_size):
        src_img, tgt_img          (3, S, S) RGB in [-1, 1]
        src_cond, tgt_cond        (4, S, S) conditioning maps, channels 0-2 surface code in [0, 1] (0 on
                                  background), channel 3 background in {0, 1}
        flow                      (S, S, 2) NDC positions in the source image per target pixel, OUTSIDE
                                  where nothing corresponds
        src_head_box, tgt_head_box (4,) NDC (x0, y0, x1, y1)
        tgt_face_kp               (5, 3) the target's face keypoints (nose, left/right eye, left/right ear:
                                  NDC x, y, depth) from the body model's regressor, for aligned head crops
        src_valid, tgt_valid      (1, S, S) 1 where the pixel shows the video, 0 on the constant padding of
                                  a crop that reached past the frame (`FramesCache.valid_masks`): losses
                                  and metrics ignore those pixels
        index                     () int64 item index, -1 for a pair chosen with `pair`

    Attributes: `videos` (the split's videos with usable frames), `targets` (N, 2) int64 rows of
    (position in `videos`, maps row), one per usable target frame, `sources` the usable rows a source is
    drawn from, per video. The three cache readers open their files lazily, so an instance can be handed
    to DataLoader workers (fork or spawn); __init__ reads only the small index arrays and closes them.
    """

    def __init__(self, frames_path: str | Path, maps_path: str | Path, smpl_path: str | Path,
                 body_path: str | Path, options: PairOptions) -> None:
        self.options = options
        body = BodyModel.from_file(body_path)
        self.frames = FramesCache(frames_path)
        self.maps = MapsCache(maps_path, body.faces, body.surface_coords)
        self.faces = self.maps.faces  # (F, 3) int64
        self.face_regressor = face_regressor(body)  # (5, V)
        self.smpl = SmplCache(smpl_path)
        try:
            self.side = self._check_side()
            known = (set(self.frames.videos), set(self.smpl.videos))
            videos, sources, targets, frame_of, usable_rows = [], [], [], {}, {}
            for video in self.maps.videos:
                usable, frame_of[video] = self._usable(video, *known)
                if usable is None or len(usable) == 0:
                    continue
                targets += [(len(videos), int(row)) for row in usable]
                sources.append(usable[: options.source_frames])
                usable_rows[video] = frozenset(usable.tolist())
                videos.append(video)
            # read once here, not for every pair: which videos have padding to mask
            padded = frozenset(v for v in frame_of if v in known[0] and self.frames.is_padded(v))
        finally:
            for reader in (self.frames, self.maps, self.smpl):
                reader.close()
        if not targets:
            raise DataError(f"no usable frames in split {options.split!r} of {self.maps.path} (frames "
                            f"{self.frames.path}, SMPL {self.smpl.path}, skip_status={options.skip_status}): "
                            "check the split and the fit's status flags")
        self.videos: tuple[str, ...] = tuple(videos)
        self.sources: list[np.ndarray] = sources
        self.targets = np.asarray(targets, dtype=np.int64)  # (N, 2)
        self._frame_of = frame_of  # video -> (N,) int64 frame position of each maps row
        self._usable_rows = usable_rows
        self._padded = padded  # videos with frames whose crop reached past the source frame

    def _check_side(self) -> int:
        side = int(self.frames.attrs["image_size"])
        if side % self.options.image_size:
            raise DataError(f"the frames cache {self.frames.path} has side {side}, which is not an integer "
                            f"multiple of image_size {self.options.image_size}: choose a divisor of {side}")
        return side

    def _in_split(self, video: str) -> bool:
        """Whether `video` belongs to the split (the frames cache's train/val flag, and the dev subject)."""
        split, dev = self.options.split, self.options.dev_subject
        if split == "all":
            return True
        in_split = self.frames.info(video).split == ("train" if split == "dev" else split)
        if dev and split in ("train", "dev"):
            in_split = in_split and (subject_of(video) == dev) == (split == "dev")
        return in_split

    def _usable(self, video: str, frame_videos: set[str],
                smpl_videos: set[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """(usable maps rows of `video` in the split, or None when it is in another split; maps row ->
        frame position)."""
        group = self.maps.group(video)
        rows_frame = group["frame"][()].astype(np.int64)  # (N,)
        if video not in frame_videos:
            raise DataError(f"video {video!r} of the correspondence cache {self.maps.path} is not in the "
                            f"frames cache {self.frames.path}: run the correspond stage on these frames")
        maps_side = int(group.attrs["image_size"])
        if maps_side != self.side:
            raise DataError(f"video {video!r} of {self.maps.path} has maps of side {maps_side} but the "
                            f"frames cache {self.frames.path} has side {self.side}: run the correspond stage "
                            "again")
        if not self._in_split(video):
            return None, rows_frame
        if video not in smpl_videos:
            raise DataError(f"video {video!r} of {self.maps.path} is not in the SMPL cache {self.smpl.path}: "
                            "run the correspond stage again")
        num_frames = self.frames.num_frames(video)
        smpl_group = self.smpl.group(video)
        smpl_frame = smpl_group["frame"][()].astype(np.int64)
        for name, frames in (("correspondence cache", rows_frame), ("SMPL cache", smpl_frame)):
            if len(frames) and (frames.min() < 0 or frames.max() >= num_frames):
                raise DataError(f"the {name} of video {video!r} names frames outside the {num_frames} "
                                f"frames of {self.frames.path}: rebuild it from these frames")
        fitted, skipped = np.zeros(num_frames, bool), np.zeros(num_frames, bool)
        fitted[smpl_frame] = True
        skipped[smpl_frame] = (smpl_group["status"][()].astype(np.int64) & self.options.skip_status) != 0
        return np.flatnonzero(fitted[rows_frame] & ~skipped[rows_frame]), rows_frame

    def __len__(self) -> int:
        return len(self.targets)

    def draw(self, epoch: int, index: int) -> PairDraw:
        """The random choices of item (epoch, index), from ``default_rng([seed, epoch, index])``."""
        if not 0 <= index < len(self.targets):
            raise IndexError(f"pair index {index} is out of range (the dataset has {len(self.targets)})")
        rng = np.random.default_rng([self.options.seed, epoch, index])
        video_pos, tgt = (int(v) for v in self.targets[index])
        candidates = self.sources[video_pos]
        src = int(candidates[rng.integers(len(candidates))])
        flip, jitter = False, None
        if self.options.augment:
            flip = bool(rng.random() < 0.5)
            o = self.options
            jitter = ColorJitter.draw(rng, o.shuffle_channels, o.hue_rotation, o.recolour_share)
        return PairDraw(self.videos[video_pos], src, tgt, flip, jitter)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (0, int(key))
        choice = self.draw(epoch, index)
        item = self.pair(choice.video, choice.src, choice.tgt, choice.flip, choice.jitter)
        item["index"] = torch.tensor(index, dtype=torch.int64)
        return item

    def pair(self, video: str, src: int, tgt: int, flip: bool = False,
             jitter: ColorJitter | None = None, src_video: str | None = None,
             visible_flow: bool = False) -> dict[str, torch.Tensor]:
        """The item of a chosen pair (maps rows `src`, `tgt` of `video`, both usable); see the class
        docstring for the fields. `flip` and `jitter` are the augmentation (module docstring).
        `src_video`: take the source from row `src` of another video (cross-imitation: a person driven by
        another video's motion). `visible_flow`: also "visible_flow", the flow through the faces the
        source shows only (OUTSIDE on the target's parts it hides), from the same records."""
        src_video = src_video or video
        rec = self._records(video, src, tgt, src_video)
        if src_video == video:
            images = self.frames.frames(video, self._frame_of[video][[src, tgt]])  # (2, side, side, 3) uint8
        else:
            images = np.concatenate((self.frames.frames(src_video, self._frame_of[src_video][[src]]),
                                     self.frames.frames(video, self._frame_of[video][[tgt]])))
        valid = self._valid(((src_video, src), (video, tgt)))  # (2, 1, S, S)
        face_index, bary, verts, cond, box = rec.face_index, rec.bary, rec.verts, rec.cond, rec.head_box
        if flip:
            face_index, bary, cond = face_index.flip(2), bary.flip(2), cond.flip(3)
            verts = verts * torch.tensor([-1.0, 1.0, 1.0])  # the mirror's keypoints follow from these
            box = torch.stack((-box[:, 2], box[:, 1], -box[:, 0], box[:, 3]), dim=1)  # (2, 4)
            images = images[:, :, ::-1]
            valid = valid.flip(3)
        size = (self.options.image_size,) * 2
        t = self._flow(face_index, bary, verts, self.options.visible_faces)
        img = torch.from_numpy(np.stack([self._resize(im) for im in images])).float() / 127.5 - 1.0
        img = img.permute(0, 3, 1, 2)  # (2, 3, S, S)
        if jitter is not None:
            img = jitter.apply(img)
        cond = resize_cond(cond, size)
        kp = face_keypoints(verts[1:2], self.face_regressor)[0]  # (5, 3)
        if flip:
            kp = kp[list(MIRROR_FACE)]  # the mirror image's left eye is the flipped right eye
        item = {"src_img": img[0].contiguous(), "tgt_img": img[1].contiguous(), "src_cond": cond[0],
                "tgt_cond": cond[1], "flow": resize_flow(t, size)[0].contiguous(), "src_head_box": box[0],
                "tgt_head_box": box[1], "tgt_face_kp": kp.float(), "src_valid": valid[0],
                "tgt_valid": valid[1],
                "index": torch.tensor(-1, dtype=torch.int64)}
        if visible_flow:
            seen = t if self.options.visible_faces else self._flow(face_index, bary, verts, True)
            item["visible_flow"] = resize_flow(seen, size)[0].contiguous()
        return item

    def pair_flow(self, video: str, src: int, tgt: int, src_video: str | None = None,
                  visible_faces: bool | None = None) -> torch.Tensor:
        """(S, S, 2) the flow T of the pair `pair` would give (unflipped), without reading its frames;
        visible_faces: through the faces the source shows only (None: as the dataset's options say)."""
        rec = self._records(video, src, tgt, src_video or video)
        visible = self.options.visible_faces if visible_faces is None else visible_faces
        t = self._flow(rec.face_index, rec.bary, rec.verts, visible)
        return resize_flow(t, (self.options.image_size,) * 2)[0].contiguous()

    def _records(self, video: str, src: int, tgt: int, src_video: str) -> Correspondence:
        """The correspondence records of source row `src` of `src_video` and target row `tgt` of `video`
        (batch of 2), after checking that both rows are usable."""
        for v, row in ((src_video, src), (video, tgt)):
            if row not in self._usable_rows.get(v, ()):
                raise ValueError(f"row {row} of video {v!r} is not a usable frame of this dataset")
        if src_video == video:
            return self.maps.records(video, [src, tgt])
        a, b = self.maps.records(src_video, [src]), self.maps.records(video, [tgt])
        return type(a)(*(torch.cat((getattr(a, f.name), getattr(b, f.name))) for f in dataclasses.fields(a)))

    def _flow(self, face_index: torch.Tensor, bary: torch.Tensor, verts: torch.Tensor,
              visible_faces: bool) -> torch.Tensor:
        """(1, side, side, 2) the flow from record 0 (source) to record 1 (target) at the render side."""
        source_faces = face_index[0:1] if visible_faces else None
        return flow(face_index[1:2], bary[1:2], verts[0:1], self.faces, source_face_index=source_faces)

    def _valid(self, rows: tuple[tuple[str, int], ...]) -> torch.Tensor:
        """(len(rows), 1, S, S) float valid masks of the frames at maps `rows` ((video, row) each), at the
        training size: a pixel is valid when at least half of its footprint is."""
        size = self.options.image_size
        masks = []
        for video, row in rows:
            mask = None
            if video in self._padded:
                mask = self.frames.valid_masks(video, self._frame_of[video][[row]])
            if mask is None:
                masks.append(torch.ones(1, 1, size, size))
                continue
            m = torch.from_numpy(mask).float()[:, None]  # (1, 1, side, side)
            if m.shape[-1] != size:
                m = (F.interpolate(m, size=(size, size), mode="area") >= 0.5).float()
            masks.append(m)
        return torch.cat(masks)

    def _resize(self, image: np.ndarray) -> np.ndarray:
        """(side, side, 3) uint8 -> (S, S, 3) uint8 by area averaging."""
        size = self.options.image_size
        image = np.ascontiguousarray(image)
        return image if size == self.side else cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def subject_of(video: str) -> str:
    """The person of a video id: iPER's and the synthetic set's <subject>_<cloth>_<action> (the whole id
    for other sources)."""
    return video.split("_")[0]


class StepBatchSampler(Sampler):
    """Yields, for step = start_step, start_step+1, ..., the list of keys (epoch, index) of this rank's
    share of the global batch.

    Keys are a pure function of the step (`keys`), so a run resumed at any step, on any number of workers,
    reads what the uninterrupted run would have read; the ranks of one global batch partition it. An epoch
    is `steps_per_epoch` global batches of a fresh permutation; the last num_items % (batch_size *
    world_size) items of each permutation are left out of that epoch.
    """

    def __init__(self, num_items: int, batch_size: int, start_step: int = 0, rank: int = 0,
                 world_size: int = 1, seed: int = 0, num_steps: int | None = None) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size or start_step < 0:
            raise ValueError(f"need batch_size >= 1, world_size >= 1, 0 <= rank < world_size and start_step "
                             f">= 0; got {batch_size}, {world_size}, {rank}, {start_step}")
        if num_steps is not None and num_steps < 0:
            raise ValueError(f"num_steps must be >= 0 or None, got {num_steps}")
        self.global_batch = batch_size * world_size
        if num_items < self.global_batch:
            raise ValueError(f"{num_items} items cannot fill one global batch of batch_size {batch_size} x "
                             f"world_size {world_size} = {self.global_batch}")
        self.num_items, self.batch_size, self.rank, self.seed = num_items, batch_size, rank, seed
        self.start_step, self.num_steps = start_step, num_steps
        self.steps_per_epoch = num_items // self.global_batch
        self._perm: tuple[int, np.ndarray] | None = None  # the last epoch's permutation

    def keys(self, step: int) -> list[tuple[int, int]]:
        """This rank's batch_size keys (epoch, index) at global step `step`."""
        epoch, batch = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_items))
        start = batch * self.global_batch + self.rank * self.batch_size
        return [(epoch, int(i)) for i in self._perm[1][start : start + self.batch_size]]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while self.num_steps is None or step < self.start_step + self.num_steps:
            yield self.keys(step)
            step += 1

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("an endless StepBatchSampler (num_steps=None) has no length")
        return self.num_steps
