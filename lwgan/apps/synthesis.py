"""The trained generator driven by body meshes: what the three tasks share.

A *source* is an image with the mesh fitted to it; a *target* is any mesh (another pose, another camera,
the same body turned). As in the data the network was trained on (`lwgan.train.pairs`), correspondence is
rasterised at the render side (a multiple of G's image size near `RENDER_SIDE`), the flow T is one gather
there and is brought down with `resize_flow`, and conditioning maps and images are area-averaged to G's
size.

Several sources (appearance transfer) follow the paper's Liquid Warping Block: every target pixel is taken
from one source, the one whose body part (`parts`, face masks) covers most of the pixel's footprint at
the render side. Each source's flow is OUTSIDE wherever another source owns the pixel, so the TSF
stream's input image is the sum of the warped sources and the features it receives are the sum of every
source's warped SID features; with one source this is exactly `Generator.forward` (tested). The
background stream sees the source chosen as `background`, with a hole where that source's person is: the
fitted mesh grown as in training and, where the detector gave one, its person mask grown the same way
(`Source.person`), so that hair, loose clothes and whatever else of the person the mesh does not cover
are inpainted too instead of staying behind as a ghost where the person stood.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lwgan.body.model import BodyModel
from lwgan.body.sequence import project_video
from lwgan.correspond.maps import Correspondence, correspond
from lwgan.geometry import OUTSIDE
from lwgan.nets.build import generator_from_state, read_checkpoint, trained_on
from lwgan.nets.generator import compose, liquid_warping_block
from lwgan.nets.masks import (
    BACKGROUND_ERODE,
    known_background,
    resize_cond,
    scaled_kernel,
)
from lwgan.nets.options import resolve_background
from lwgan.render.raster import RasterSettings
from lwgan.render.shade import to_uint8
from lwgan.warp.flow import flow, flow_valid, resize_flow, warp

log = logging.getLogger(__name__)

RENDER_SIDE = 256  # the frames-cache side of the default pipeline, where training correspondence is made
RENDER_CHUNK = 16  # target meshes rasterised at once


@dataclasses.dataclass(frozen=True)
class Source:
    """An image and its mesh at G's size: img (1, 3, S, S) in [-1, 1], cond (1, 4, S, S), and the
    correspondence record at the render side (for the flow); person (1, 1, S, S) in {0, 1}: the
    detector's person mask (1 wherever any of a G pixel's footprint is the person), None = the mesh
    alone."""

    img: torch.Tensor
    cond: torch.Tensor
    record: Correspondence
    person: torch.Tensor | None = None


class Synthesizer:
    """G of a checkpoint with the body model it was trained with, on `device`.

    visible_faces: take texture only from faces seen in a source (parts hidden there are left to G);
    None = as the checkpoint was trained (`train.visible_faces`). background: "learned" or "fill", what G
    puts where the source's person was (`Generator.use_background`), or "auto": "fill" for a G trained on
    the synthetic set, since a source here is a real photo or video (`resolve_background`); `background`
    holds the mode used.
    """

    def __init__(self, checkpoint: str | Path, body: BodyModel, device: str | torch.device = "cpu",
                 batch_size: int = 8, visible_faces: bool | None = None, background: str = "auto") -> None:
        self.device = torch.device(device)
        self.checkpoint = Path(checkpoint)
        state = read_checkpoint(self.checkpoint)
        self.generator, self.train = generator_from_state(state, self.checkpoint, self.device)
        self.background = resolve_background(background, trained_on(state), "footage",
                                             self.generator.bg.residual)
        self.generator.use_background(self.background)
        self.step = int(state["step"])
        self.discriminator_state = state.get("discriminator")  # for personalisation; the rest is dropped
        self.size = self.train.image_size
        self.side = self.size * max(1, round(RENDER_SIDE / self.size))
        self.body = body
        self.faces = body.faces.long()  # (F, 3)
        self.head_faces = body.head_mask[self.faces].all(dim=1)  # (F,) faces of the head part
        self.batch_size = batch_size
        self.visible_faces = self.train.visible_faces if visible_faces is None else visible_faces
        self.bg_kernel = scaled_kernel(BACKGROUND_ERODE, self.size)

    # -- meshes and records ------------------------------------------------------------------------------
    def vertices(self, betas: np.ndarray, pose: np.ndarray, cam: np.ndarray) -> torch.Tensor:
        """(N, V, 3) projected vertices for betas (S,), pose (N, J * 3), cam (N, 3)."""
        return project_video(self.body, betas, np.atleast_2d(pose), np.atleast_2d(cam))

    def records(self, verts: torch.Tensor) -> Correspondence:
        """The correspondence records (render side) of projected vertices (N, V, 3)."""
        return correspond(verts.float(), self.faces, self.body.surface_coords, self.body.head_mask,
                          RasterSettings(self.side, self.side))

    def images(self, frames: np.ndarray) -> torch.Tensor:
        """(N, side, side, 3) uint8 crops -> (N, 3, S, S) float in [-1, 1], area-averaged."""
        small = [f if f.shape[0] == self.size else
                 cv2.resize(np.ascontiguousarray(f), (self.size, self.size), interpolation=cv2.INTER_AREA)
                 for f in frames]
        return torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).float().to(self.device) / 127.5 - 1.0

    def conds(self, record: Correspondence) -> torch.Tensor:
        return resize_cond(record.cond, (self.size, self.size)).to(self.device)

    def source(self, frame: np.ndarray, verts: torch.Tensor, mask: np.ndarray | None = None) -> Source:
        """A source from one (side, side, 3) uint8 crop and its projected vertices (1, V, 3); mask:
        (side, side) bool, the detector's person mask in the crop, if there is one."""
        if frame.shape[:2] != (self.side, self.side):
            raise ValueError(f"a source crop must be {self.side}x{self.side}, got {frame.shape[:2]}")
        person = None
        if mask is not None:
            if mask.shape != (self.side, self.side):
                raise ValueError(f"a source's person mask must be {self.side}x{self.side}, got {mask.shape}")
            area = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None, None]
            person = (F.adaptive_max_pool2d(area, self.size) > 0).float().to(self.device)
        record = self.records(verts)
        return Source(self.images(frame[None]), self.conds(record), record, person)

    def flow(self, target: Correspondence, source: Source) -> torch.Tensor:
        """T (B, S, S, 2) from `source` to each target record; with `visible_faces`, OUTSIDE on the faces
        the source does not show."""
        batch = target.face_index.shape[0]
        seen = source.record.face_index.expand(batch, -1, -1) if self.visible_faces else None
        t = flow(target.face_index, target.bary, source.record.verts.expand(batch, -1, -1), self.faces,
                 source_face_index=seen)
        return resize_flow(t, (self.size, self.size)).to(self.device)

    def owners(self, target: Correspondence, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, S, S) index of the part that covers most of each G pixel's footprint in the target records;
        parts: (F,) bool face masks."""
        face = target.face_index.long()  # (B, side, side)
        shares = torch.stack([(part[face.clamp(min=0)] & (face >= 0)).float() for part in parts], dim=1)
        return F.adaptive_avg_pool2d(shares, self.size).argmax(dim=1).to(self.device)  # (B, S, S)

    def split(self, flows: Sequence[torch.Tensor], target: Correspondence,
              parts: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        """Each source's flow kept only on the G pixels its part owns (`owners`), OUTSIDE elsewhere, so
        every pixel has one source. One source keeps its whole flow."""
        if len(flows) == 1:
            return list(flows)
        every = torch.ones(len(self.faces), dtype=torch.bool)
        owner = self.owners(target, [every if p is None else p.cpu() for p in parts])
        return [torch.where((owner == k)[..., None], t, torch.full_like(t, OUTSIDE))
                for k, t in enumerate(flows)]

    # -- the generator -----------------------------------------------------------------------------------
    def encode(self, source: Source) -> tuple[torch.Tensor, ...]:
        """The SID stream's features of a source at the LWB points."""
        return self.generator.encode(source.img, source.cond).features

    def inpaint(self, source: Source) -> torch.Tensor:
        """The background stream's output (1, 3, S, S) for a source, its hole the mesh and the person
        mask grown alike (module docstring)."""
        known = known_background(source.cond, self.bg_kernel, source.person)
        return self.generator.inpaint(source.img, known)

    def render(self, sources: Sequence[Source], features: Sequence[tuple[torch.Tensor, ...]],
               flows: Sequence[torch.Tensor], tgt_cond: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) targets from sources with their SID features and flows (B, S, S, 2) each, the
        targets' conditioning maps (B, 4, S, S) and the background (1, 3, S, S)."""
        batch = tgt_cond.shape[0]
        warped = torch.zeros(batch, 3, self.size, self.size, device=self.device)
        seen = torch.zeros(batch, 1, self.size, self.size, device=self.device)
        injected: list[torch.Tensor] | None = None
        for source, feats, t in zip(sources, features, flows, strict=True):
            warped = warped + warp(source.img.expand(batch, -1, -1, -1), t)
            seen = torch.maximum(seen, flow_valid(t)[:, None].to(seen.dtype))
            lwb = liquid_warping_block([f.expand(batch, -1, -1, -1) for f in feats], t)
            injected = list(lwb) if injected is None else [a + b for a, b in zip(injected, lwb, strict=True)]
        tsf = self.generator.transfer(warped, seen, tgt_cond, injected)
        return compose(tsf.attention, bg.expand(batch, -1, -1, -1), tsf.color)

    def run(self, sources: Sequence[Source], targets: torch.Tensor, parts: Sequence[torch.Tensor | None],
            background_source: int = 0, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Synthesise one frame per target mesh (N, V, 3 projected vertices): (N, S, S, 3) uint8 RGB.
        `parts[k]` (F,) bool names the faces source k provides (None: all)."""
        if len(sources) != len(parts):
            raise ValueError(f"{len(sources)} sources but {len(parts)} part masks")
        frames = []
        self.generator.eval()
        with torch.no_grad():
            features = [self.encode(s) for s in sources]
            bg = self.inpaint(sources[background_source])
            step = min(self.batch_size, RENDER_CHUNK)
            for start in range(0, len(targets), step):
                record = self.records(targets[start:start + step])
                flows = self.split([self.flow(record, s) for s in sources], record, parts)
                out = self.render(sources, features, flows, self.conds(record), bg)
                frames.append(to_uint8(out, low=-1.0, channels_first=True))
                if progress is not None:
                    progress(min(start + step, len(targets)), len(targets))
        return np.concatenate(frames)
