"""Toy videos for tests and benchmarks: a coloured blob (the "person") moving over a textured background,
with its ground-truth box and mask per frame. Written as frame folders, iPER-layout trees or video files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lwgan.data.errors import DataError

BLOB_BGR = (40, 60, 220)  # a saturated red: easy to find again in a cropped frame
NOISE_FIELDS = 5


@dataclass(frozen=True)
class ToyVideo:
    """A blob of `blob_size` (width, height) fractions of the frame, walking left to right over `frames`."""

    frames: int = 8
    height: int = 96
    width: int = 64
    seed: int = 0
    blob_size: tuple[float, float] = (0.2, 0.5)
    travel: tuple[float, float] = (0.3, 0.7)  # blob centre x, as a fraction of the width, first/last frame
    noise: float = 0.0  # standard deviation of per-frame sensor-like noise (cycled from NOISE_FIELDS fields)

    def box(self, t: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the blob in frame t, pixels, exclusive ends."""
        bw, bh = round(self.blob_size[0] * self.width), round(self.blob_size[1] * self.height)
        a, b = self.travel
        cx = (a + (b - a) * t / max(self.frames - 1, 1)) * self.width
        cy = 0.55 * self.height + 0.03 * self.height * np.sin(t)
        x0, y0 = int(round(cx - bw / 2)), int(round(cy - bh / 2))
        return x0, y0, x0 + bw, y0 + bh

    def union_box(self) -> tuple[int, int, int, int]:
        boxes = np.array([self.box(t) for t in range(self.frames)])
        return (int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()),
                int(boxes[:, 3].max()))

    def background(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR texture: stripes plus smoothed noise."""
        rng = np.random.default_rng(self.seed)
        yy, xx = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        base = np.stack([np.sin(xx / 5.0) * 50 + 120, np.cos(yy / 7.0) * 40 + 110,
                         np.sin((xx + yy) / 9.0) * 40 + 100], axis=-1)  # (H, W, 3)
        noise = cv2.GaussianBlur(rng.uniform(0, 255, base.shape).astype(np.float32), (0, 0), 2.0)
        return np.clip(0.6 * base + 0.4 * noise, 0, 255).astype(np.uint8)

    def render(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(BGR image (H, W, 3) uint8, mask (H, W) uint8 0/255) per frame."""
        background = self.background()
        fields = []
        if self.noise > 0:
            rng = np.random.default_rng(self.seed + 1)
            fields = [rng.normal(0.0, self.noise, background.shape).astype(np.int16)
                      for _ in range(NOISE_FIELDS)]
        for t in range(self.frames):
            x0, y0, x1, y1 = self.box(t)
            mask = np.zeros((self.height, self.width), np.uint8)
            centre = ((x0 + x1) // 2, (y0 + y1) // 2)
            axes = (max((x1 - x0) // 2, 1), max((y1 - y0) // 2, 1))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
            image = background.copy()
            image[mask > 0] = BLOB_BGR
            if fields:
                image = np.clip(image + fields[t % NOISE_FIELDS], 0, 255).astype(np.uint8)
            yield image, mask


def write_frame_folder(video: ToyVideo, folder: Path, mask_folder: Path | None = None) -> None:
    """NNNN.jpg frames (and NNNN.png masks) of `video`."""
    folder.mkdir(parents=True, exist_ok=True)
    if mask_folder is not None:
        mask_folder.mkdir(parents=True, exist_ok=True)
    for t, (image, mask) in enumerate(video.render()):
        cv2.imwrite(str(folder / f"{t:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if mask_folder is not None:
            cv2.imwrite(str(mask_folder / f"{t:04d}.png"), mask)


def write_video_file(video: ToyVideo, path: Path, fps: float = 25.0, fourcc: str = "mp4v") -> None:
    """`video` as a video file (mp4v in .mp4 by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (video.width, video.height))
    if not writer.isOpened():
        raise DataError(f"cannot write video {path} with codec {fourcc!r}")
    try:
        for image, _ in video.render():
            writer.write(image)
    finally:
        writer.release()


def write_iper_tree(root: Path, videos: dict[str, ToyVideo], train: Sequence[str], val: Sequence[str],
                    masks: bool = True, as_mp4: bool = False) -> None:
    """An iPER-layout root: images/<s>/<c>/<a>/NNNN.jpg (or <s>_<c>_<a>.mp4), masks/..., train.txt, val.txt.

    `videos` maps ids "<s>_<c>_<a>" to content; `train`/`val` are written to the lists as given (they may
    name videos that do not exist).
    """
    for video_id, video in videos.items():
        subject, cloth, action = video_id.split("_")
        masks_dir = root / "masks" / subject / cloth / action if masks else None
        if as_mp4:
            write_video_file(video, root / f"{video_id}.mp4")
            if masks_dir is not None:
                masks_dir.mkdir(parents=True, exist_ok=True)
                for t, (_, mask) in enumerate(video.render()):
                    cv2.imwrite(str(masks_dir / f"{t:04d}.png"), mask)
        else:
            write_frame_folder(video, root / "images" / subject / cloth / action, masks_dir)
    (root / "train.txt").write_text("".join(f"{v}\n" for v in train))
    (root / "val.txt").write_text("".join(f"{v}\n" for v in val))
