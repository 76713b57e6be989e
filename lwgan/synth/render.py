"""Rendering one synthetic video: pose the body, place the camera, paint, shade, anti-alias, and measure
the ground truth (weak-perspective camera, COCO keypoints with visibility, 3D joints, person mask).

Pictures are rendered at `SUPERSAMPLE` times the output size and reduced with area averaging, so edges
and patterns are smooth. The light is fixed in the camera's frame: as the person turns, the shading moves
over their clothes. The person mask is the rasteriser's silhouette AT the output size (pixel-centre rule
of `lwgan.geometry`): of the body alone, which `project_video` recomputes exactly from the ground truth,
plus whatever the video wears beyond the body surface (`lwgan.synth.loose`: a skirt, hanging hair).
Keypoint visibility is judged against everything rendered, the loose pieces included.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable

import cv2
import numpy as np
import torch

from lwgan.body.cameras import facing_camera_orient, fit_weak_perspective, weak_perspective_project
from lwgan.body.model import BodyModel
from lwgan.body.poses import pose_from_angles
from lwgan.body.sequence import pose_body
from lwgan.geometry import ndc_to_pixel
from lwgan.render.raster import RasterSettings, rasterize
from lwgan.synth.appearance import VIDEO, BodyLayout, Outfit, Subject, Texturer, paint_garment, stream
from lwgan.synth.background import add_shadow, make_background
from lwgan.synth.loose import SKIRT, LooseChoice, LooseSet
from lwgan.synth.motion import A_POSE_SHOULDER, Motion, turn_motion, varied_motion

SUPERSAMPLE = 2
# Each video's ambient light is drawn from [AMBIENT_MIN, ambient_max]: the share of the light that reaches
# a surface turned away from the light source (`synth.ambient_max`, 1 = up to flat light).
AMBIENT_MIN, AMBIENT_MAX = 0.4, 0.55
FILL = (0.55, 0.65)  # fraction of the image height a standing person spans
_RASTER_CHUNK = 8  # frames per rasteriser call


@dataclasses.dataclass(frozen=True)
class VideoSpec:
    """Which video: subject and cloth are 0-based indices, action is 1 (turn) or 2 (varied motion)."""

    subject: int
    cloth: int
    action: int
    frames: int
    image_size: int
    seed: int

    @property
    def name(self) -> str:
        """iPER video id, e.g. '001/1/2' (subject and cloth 1-based on disk, as in iPER)."""
        return f"{self.subject + 1:03d}/{self.cloth + 1}/{self.action}"

    @property
    def stem(self) -> str:
        return self.name.replace("/", "_")


def _smooth_drift(rng: np.random.Generator, frames: int, amplitude: float) -> np.ndarray:
    """(N,) slow random wander in [-amplitude, amplitude]: two sines of periods between N/2 and 2N."""
    t = np.arange(frames, dtype=np.float64)
    wave = sum(np.sin(2 * np.pi * t / (frames * rng.uniform(0.5, 2.0)) + rng.uniform(0, 2 * np.pi))
               for _ in range(2))
    return amplitude * wave / 2.0


def _vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) -> (B, V, 3) unit area-weighted vertex normals (outward for a counter-clockwise mesh)."""
    corners = vertices[:, faces]  # (B, F, 3, 3)
    normal = torch.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    out = torch.zeros_like(vertices)
    for k in range(3):
        out.index_add_(1, faces[:, k], normal)
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _mesh_sign(vertices: np.ndarray, faces: np.ndarray) -> float:
    """+1 if the faces wind counter-clockwise seen from outside (positive signed volume), else -1."""
    tri = vertices[faces]  # (F, 3, 3)
    volume = np.einsum("fc,fc->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()
    return 1.0 if volume >= 0 else -1.0


def face_parts(body: BodyModel) -> np.ndarray:
    """(F,) int64 part of each face: the label that at least two corners share, else the first corner's."""
    labels = body.part_labels.cpu().numpy()[body.faces.cpu().numpy()]  # (F, 3)
    return np.where(labels[:, 1] == labels[:, 2], labels[:, 1], labels[:, 0])


def keypoint_tolerance(body: BodyModel, betas: np.ndarray, size: int = 384) -> np.ndarray:
    """(K,) metres: how far behind the surface seen at its pixel a keypoint may lie and still be visible.

    A keypoint on the skin (nose, eyes, ears: nearest vertex on the head part) gets 1.5 x its distance to
    the nearest vertex + 2 cm. A joint keypoint lies inside the body, behind its own flesh: it gets at
    least 1.25 x the depth of the flesh in front of it seen from the front and from the back of the
    subject standing in an A-pose (e.g. ~5-10 cm for a shoulder, ~3 cm for a wrist).
    """
    arms = {"left_shoulder": (0, 0, A_POSE_SHOULDER), "right_shoulder": (0, 0, -A_POSE_SHOULDER)}
    a_pose = pose_from_angles(arms)  # (J * 3,)
    poses = a_pose.reshape(1, -1).repeat(3, 1)  # (3, J * 3): rest, front, back
    poses[0] = 0.0
    poses[1:, :3] = facing_camera_orient(torch.tensor([0.0, math.pi]))
    posed = pose_body(body, betas, poses.numpy())
    nearest, closest = torch.cdist(posed.keypoints[0], posed.vertices[0]).min(dim=1)  # (K,) each
    on_skin = body.head_mask.cpu()[closest]  # (K,)
    cam = fit_weak_perspective(posed.vertices[1:], fill=0.8)  # (2, 3)
    verts = weak_perspective_project(posed.vertices[1:], cam)
    keypoints = weak_perspective_project(posed.keypoints[1:], cam)  # (2, K, 3)
    depth = rasterize(verts, body.faces.cpu(), RasterSettings(size, size)).depth  # (2, H, W)
    pixel = ndc_to_pixel(keypoints[..., :2], size, size).round().long().clamp(0, size - 1)  # (2, K, 2)
    seen = torch.stack([depth[v][pixel[v, :, 1], pixel[v, :, 0]] for v in range(2)])  # (2, K)
    flesh = torch.nan_to_num(keypoints[..., 2] - seen, neginf=0.0).clamp_min(0.0).amax(dim=0)  # (K,)
    tolerance = 1.5 * nearest + 0.02
    return torch.where(on_skin, tolerance, torch.maximum(tolerance, 1.25 * flesh)).numpy()


@dataclasses.dataclass(frozen=True)
class VideoTruth:
    """Ground truth of one video of N frames (all float32 unless stated).

    betas (S,); pose (N, J * 3) axis-angle with the global orientation; cam (N, 3) weak perspective
    (s, tx, ty) mapping the posed body (no translation) to NDC; keypoints (N, K, 3) COCO pixel u
    (column), v (row) with pixel centres at integers, and visibility 1/0; joints3d (N, J, 3) camera axes,
    metres; euler (N, J, 3) and yaw (N,) the motion in degrees (`motion.Motion`); extras: JSON-able
    description (outfit, background, light, segments).
    """

    betas: np.ndarray
    pose: np.ndarray
    cam: np.ndarray
    keypoints: np.ndarray
    joints3d: np.ndarray
    euler: np.ndarray
    yaw: np.ndarray
    extras: dict


class VideoRenderer:
    """Renders the videos of one body model; holds what all videos share (layout, face parts, rest)."""

    def __init__(self, body: BodyModel) -> None:
        self.body = body
        self.layout = BodyLayout.from_body(body)
        self.faces = body.faces.cpu()
        self.faces_np = self.faces.numpy()
        self.face_part = face_parts(body)
        self.rest = body.smpl.v_template.detach().cpu().numpy().astype(np.float64)  # (V, 3)
        self.sign = _mesh_sign(self.rest, self.faces_np)
        feet = [body.part_names.index(n) for n in ("left_foot", "right_foot") if n in body.part_names]
        self.feet = np.isin(body.part_labels.cpu().numpy(), feet)  # (V,)

    def motion(self, spec: VideoSpec, rng: np.random.Generator) -> Motion:
        if spec.action == 1:
            return turn_motion(spec.frames, rng)
        return varied_motion(spec.frames, rng)

    def render(
        self,
        spec: VideoSpec,
        subject: Subject,
        outfit: Outfit,
        write_frame: Callable[[int, np.ndarray, np.ndarray], None],
        loose: LooseChoice | None = None,
        backdrop: tuple[np.ndarray, dict] | None = None,
        ambient_max: float = AMBIENT_MAX,
    ) -> VideoTruth:
        """Render every frame, handing (index, image (H, W, 3) uint8 RGB, mask (H, W) uint8 0/255) to
        `write_frame` in order, and return the video's ground truth. `loose`: a skirt and hanging hair to
        render beside the body (None: the body surface alone). `backdrop`: a photo background at the
        supersampled size and what was drawn for it (`lwgan.synth.photos.photo_background`); None draws a
        procedural one from the video's stream. The ambient light is drawn from [AMBIENT_MIN,
        ambient_max]."""
        rng = stream(spec.seed, VIDEO, spec.subject, spec.cloth, spec.action)
        motion = self.motion(spec, rng)
        betas = np.asarray(subject.betas, dtype=np.float32)
        pose = motion.pose()  # (N, 72) float32
        posed = pose_body(self.body, betas, pose)
        cam, floor_ndc, drift_y = self._camera(spec, rng, betas, posed.vertices)
        verts = weak_perspective_project(posed.vertices, torch.from_numpy(cam))  # (N, V, 3)
        extra = self._loose(loose, betas, posed) if loose is not None else None
        faces = self.faces
        if extra is not None:
            extra_verts = weak_perspective_project(torch.from_numpy(extra.vertices), torch.from_numpy(cam))
            verts = torch.cat((verts, extra_verts), dim=1)
            faces = torch.cat((self.faces, torch.from_numpy(extra.faces) + posed.vertices.shape[1]))
        size, big = spec.image_size, spec.image_size * SUPERSAMPLE
        if backdrop is None:
            background, kind = make_background(rng, big, big, floor_ndc)
        else:
            background, kind = backdrop[0], "photo"
        light = np.array([rng.uniform(-0.7, 0.7), -rng.uniform(0.4, 1.0), -1.0])
        light /= np.linalg.norm(light)
        ambient, shadow = float(rng.uniform(AMBIENT_MIN, ambient_max)), float(rng.uniform(0.25, 0.45))
        texturer = Texturer(self.layout, subject, outfit)
        tolerance = keypoint_tolerance(self.body, betas)  # (K,)
        kp_ndc = weak_perspective_project(posed.keypoints, torch.from_numpy(cam))  # (N, K, 3)
        kp_pixels = ndc_to_pixel(kp_ndc[..., :2], size, size).numpy()  # (N, K, 2)
        visible = np.zeros(kp_pixels.shape[:2], dtype=np.float32)  # (N, K)
        for start in range(0, spec.frames, _RASTER_CHUNK):
            chunk = slice(start, min(start + _RASTER_CHUNK, spec.frames))
            fine = rasterize(verts[chunk], faces, RasterSettings(big, big))
            coarse = rasterize(verts[chunk], faces, RasterSettings(size, size))
            normals = (self.sign * _vertex_normals(posed.vertices[chunk], self.faces)).numpy()  # (B, V, 3)
            if extra is not None:  # sheets have no outside: `_paint` turns each normal to the camera
                extra_normals = _vertex_normals(torch.from_numpy(extra.vertices[chunk]),
                                                torch.from_numpy(extra.faces)).numpy()
                normals = np.concatenate((normals, extra_normals), axis=1)
            for b, i in enumerate(range(chunk.start, chunk.stop)):
                canvas = background.copy()
                body_verts = verts[i, :len(self.feet)]
                feet = body_verts[self.feet].numpy() if self.feet.any() else body_verts.numpy()
                half = 0.5 * float(feet[:, 0].max() - feet[:, 0].min()) + 0.15 * float(cam[i, 0])
                add_shadow(canvas, float(feet[:, 0].mean()), floor_ndc + drift_y[i], half, shadow)
                self._paint(canvas, fine.face_index[b].numpy(), fine.bary[b].numpy(), normals[b], texturer,
                            light, ambient, extra)
                small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
                image = (np.clip(small, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
                face_index = coarse.face_index[b].numpy()
                mask = np.where(face_index >= 0, 255, 0).astype(np.uint8)
                visible[i] = self._visibility(kp_pixels[i], kp_ndc[i, :, 2].numpy(), coarse.depth[b].numpy(),
                                              tolerance)
                write_frame(i, image, mask)
        extras = {
            "outfit": outfit.describe(),
            "outfit_json": json.dumps(outfit.as_dict(), sort_keys=True),
            "background": kind,
            **({"photo": backdrop[1]} if backdrop is not None else {}),
            "light": [round(float(v), 6) for v in light],
            "ambient": ambient,
            "segments": [list(s) for s in motion.segments],
        }
        if loose is not None:
            extras["loose"] = loose.describe()
        return VideoTruth(
            betas=betas,
            pose=pose,
            cam=cam,
            keypoints=np.concatenate((kp_pixels, visible[..., None]), axis=-1).astype(np.float32),
            joints3d=posed.joints.numpy().astype(np.float32),
            euler=motion.euler.astype(np.float32),
            yaw=motion.yaw.astype(np.float32),
            extras=extras,
        )

    def _loose(self, choice: LooseChoice, betas: np.ndarray, posed) -> LooseSet | None:
        """The video's loose pieces around its posed body (camera axes), shaped on the subject at rest."""
        rest = pose_body(self.body, betas, np.zeros((1, 3 * self.body.num_joints), dtype=np.float32))
        names = list(self.body.keypoint_names)
        ears = posed.keypoints[:, [names.index("left_ear"), names.index("right_ear")]].numpy()
        return LooseSet.for_video(choice, rest.vertices[0].numpy().astype(np.float64),
                                  rest.joints[0].numpy().astype(np.float64),
                                  posed.joints.numpy().astype(np.float64), ears.astype(np.float64))

    def _camera(
        self, spec: VideoSpec, rng: np.random.Generator, betas: np.ndarray, vertices: torch.Tensor
    ) -> tuple[np.ndarray, float, np.ndarray]:
        """Weak-perspective cameras (N, 3) float32 framing the subject's standing height to `FILL` of the
        image, feet on a fixed floor line (the lowest point of every frame touches it), with a small drift.
        Also returns the floor's NDC y without drift and the vertical drift (N,) in NDC."""
        rest_pose = np.zeros((1, 3 * self.body.num_joints), dtype=np.float32)
        stand = pose_body(self.body, betas, rest_pose).vertices[0].numpy()  # (V, 3) body axes, Y up
        top, floor = -float(stand[:, 1].max()), -float(stand[:, 1].min())  # camera y points down
        scale = 2.0 * rng.uniform(*FILL) / (floor - top)
        centre = rng.uniform(-0.06, 0.06), rng.uniform(-0.04, 0.04)
        tx = centre[0] / scale
        ty = centre[1] / scale - 0.5 * (top + floor)
        lowest = vertices[..., 1].amax(dim=1).double().numpy()  # (N,) camera y of the lowest point
        drift_x = _smooth_drift(rng, spec.frames, 0.03)
        drift_y = _smooth_drift(rng, spec.frames, 0.01)
        offset_x = tx + drift_x / scale
        offset_y = ty + (floor - lowest) + drift_y / scale
        cam = np.stack((np.full(spec.frames, scale), offset_x, offset_y), axis=1).astype(np.float32)
        return cam, float(scale * (floor + ty)), drift_y

    def _paint(
        self,
        canvas: np.ndarray,
        face_index: np.ndarray,
        bary: np.ndarray,
        normals: np.ndarray,
        texturer: Texturer,
        light: np.ndarray,
        ambient: float,
        extra: LooseSet | None = None,
    ) -> None:
        """Paint the shaded, textured body (and the loose pieces `extra`, faces numbered after the body's)
        over canvas (H, W, 3) float32 in place.

        face_index (H, W) int32 -1 background; bary (H, W, 3); normals (V [+ V'], 3) camera axes.
        """
        flat = face_index.reshape(-1)
        pixels = np.flatnonzero(flat >= 0)  # (P,)
        if pixels.size == 0:
            return
        face = flat[pixels]
        weights = bary.reshape(-1, 3)[pixels].astype(np.float64)  # (P, 3)
        on_body = face < len(self.faces_np)
        albedo = np.empty((pixels.size, 3), dtype=np.float32)
        normal = np.empty((pixels.size, 3), dtype=np.float64)
        corners = self.faces_np[face[on_body]]  # (P, 3)
        w = weights[on_body]
        rest = np.einsum("pk,pkc->pc", w, self.rest[corners])  # (P, 3)
        normal[on_body] = np.einsum("pk,pkc->pc", w, normals[corners])
        albedo[on_body] = texturer.albedo(rest, self.face_part[face[on_body]])
        if extra is not None and not on_body.all():
            loose = face[~on_body] - len(self.faces_np)
            w = weights[~on_body]
            local = extra.faces[loose]  # (P', 3) corners among the loose vertices
            n = np.einsum("pk,pkc->pc", w, normals[local + len(self.rest)])
            normal[~on_body] = np.where(n[:, 2:3] > 0, -n, n)  # towards the camera (-z): both sides lit
            albedo[~on_body] = _loose_albedo(extra.piece[loose], np.einsum("pk,pk->p", w, extra.angle[local]),
                                             np.einsum("pk,pk->p", w, extra.along[local]), texturer.subject,
                                             texturer.outfit)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True).clip(1e-9)
        lit = ambient + (1.0 - ambient) * np.clip(normal @ light, 0.0, None)  # (P,)
        canvas.reshape(-1, 3)[pixels] = albedo * lit[:, None].astype(np.float32)

    @staticmethod
    def _visibility(
        pixels: np.ndarray, depth: np.ndarray, depth_map: np.ndarray, tolerance: np.ndarray
    ) -> np.ndarray:
        """(K,) 1.0 where a keypoint is in the image and not behind the surface seen at its pixel."""
        height, width = depth_map.shape
        col = np.round(pixels[:, 0]).astype(np.int64)
        row = np.round(pixels[:, 1]).astype(np.int64)
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        seen = depth_map[row.clip(0, height - 1), col.clip(0, width - 1)]  # +inf on background
        return (inside & (depth <= seen + tolerance)).astype(np.float32)


def _loose_albedo(piece: np.ndarray, angle: np.ndarray, along: np.ndarray, subject: Subject,
                  outfit: Outfit) -> np.ndarray:
    """(P, 3) float32 colour of loose-piece points: a skirt in the outfit's bottom fabric and pattern, hair
    in the subject's hair colour with strands, darker towards the tips."""
    out = np.empty((piece.size, 3), dtype=np.float32)
    skirt = piece == SKIRT
    paint_garment(out, skirt, outfit.bottom, angle, along, 0.15)
    hair = ~skirt
    if hair.any():
        colour = np.asarray(subject.hair, dtype=np.float32) / 255.0
        strands = 0.82 + 0.18 * np.cos(angle[hair] * 23.0) * np.cos(angle[hair] * 7.0 + 1.3)
        tips = 1.0 - 0.25 * np.clip(along[hair] / 0.3, 0.0, 1.0)
        out[hair] = colour * (strands * tips)[:, None].astype(np.float32)
    return out
