"""The paper's three tasks on fitted people (`lwgan.apps.person.Person`), each a sequence of output frames
(N, S, S, 3) uint8 RGB at G's image size.

Motion imitation: the source's body shape in the driving video's poses, over the source's background.
Several photos of the source (front and back, say) can share the work, as the paper's Liquid Warping
Block allows: each body face is textured from the first photo that shows it.
The camera follows `CAMERA_STRATEGIES`, as in the original's ``swap_smpl``:
    smooth   the source's scale; the source's offset plus the driving person's displacement since its
             first frame (the person stays where the photo has them and moves as the driver moves)
    source   the source's camera for every frame
    driving  the driving video's camera (the person is placed exactly where the driver is)

Appearance transfer: the reference person's shape, pose and background, with the head taken from the
reference and every other body part from the clothes source (two sources in one Liquid Warping Block,
`lwgan.apps.synthesis`); with a driving video, the reference then imitates its motion.

Novel view synthesis: the source's mesh turned about the vertical axis of the image through its root
joint (yaw), optionally tilted by an elevation; texture only from faces the photo shows, so the unseen
side is left to G.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from lwgan.apps.person import Person
from lwgan.apps.synthesis import Source, Synthesizer
from lwgan.body.cameras import weak_perspective_project
from lwgan.body.sequence import pose_body
from lwgan.warp.flow import visible_faces

CAMERA_STRATEGIES = ("smooth", "source", "driving")
Progress = Callable[[int, int], None] | None


def drive_cameras(source_cam: np.ndarray, driving_cam: np.ndarray, strategy: str = "smooth") -> np.ndarray:
    """(N, 3) weak-perspective cameras (s, tx, ty) for the targets: source_cam (3,), driving_cam (N, 3);
    see the module docstring for the strategies."""
    source_cam, driving_cam = np.asarray(source_cam, np.float32), np.asarray(driving_cam, np.float32)
    if strategy == "driving":
        return driving_cam.copy()
    cams = np.repeat(source_cam[None], len(driving_cam), axis=0)
    if strategy == "smooth":
        cams[:, 1:] += driving_cam[:, 1:] - driving_cam[:1, 1:]
    elif strategy != "source":
        raise ValueError(f"unknown camera strategy {strategy!r}; use one of {CAMERA_STRATEGIES}")
    return cams


def as_sources(synth: Synthesizer, people: Sequence[Person]) -> list[Source]:
    """Each person's first frame as a source, with its mesh and the detector's person mask."""
    return [synth.source(p.frames[0], synth.vertices(p.betas, p.pose[:1], p.cam[:1]), p.mask)
            for p in people]


def imitate(synth: Synthesizer, sources: Person | Sequence[Person], driving: Person, camera: str = "smooth",
            progress: Progress = None) -> np.ndarray:
    """The source person performing the driving video's motion: one frame per driving frame. Several
    photos of the person (e.g. front and back) share the work by `visibility_parts`; the first gives the
    body shape, the camera and the background."""
    people = [sources] if isinstance(sources, Person) else list(sources)
    first = people[0]
    src = as_sources(synth, people)
    targets = synth.vertices(first.betas, driving.pose, drive_cameras(first.cam[0], driving.cam, camera))
    return synth.run(src, targets, visibility_parts(synth, src), progress=progress)


def visibility_parts(synth: Synthesizer, sources: Sequence[Source]) -> list[torch.Tensor | None]:
    """Face masks (F,) bool for several photos of one person: each face goes to the first photo that shows
    it, faces none shows to the first photo. One photo takes every face (None)."""
    if len(sources) == 1:
        return [None]
    taken = torch.zeros(len(synth.faces), dtype=torch.bool)
    parts = []
    for source in sources:
        seen = visible_faces(source.record.face_index, len(synth.faces))[0]  # (F,)
        parts.append(seen & ~taken)
        taken |= seen
    parts[0] = parts[0] | ~taken
    return parts


def transfer(synth: Synthesizer, clothes: Person, reference: Person, driving: Person | None = None,
             camera: str = "smooth", progress: Progress = None) -> np.ndarray:
    """The reference person wearing the clothes of `clothes`, head kept: one frame, or one per driving
    frame."""
    a, b = as_sources(synth, [clothes, reference])
    if driving is None:
        targets = b.record.verts
    else:
        targets = synth.vertices(reference.betas, driving.pose,
                                 drive_cameras(reference.cam[0], driving.cam, camera))
    head = synth.head_faces
    return synth.run([a, b], targets, [~head, head], background_source=1, progress=progress)


def turn(vertices: torch.Tensor, pivot: torch.Tensor, yaw_deg: np.ndarray, elevation_deg: float = 0.0
         ) -> torch.Tensor:
    """Vertices (1, V, 3) in camera axes turned about the vertical image axis through `pivot` (3,) by each
    yaw, then tilted about the horizontal image axis by the elevation: (N, V, 3)."""
    yaw = torch.as_tensor(np.radians(yaw_deg), dtype=vertices.dtype)  # (N,)
    cos, sin, zero, one = torch.cos(yaw), torch.sin(yaw), torch.zeros_like(yaw), torch.ones_like(yaw)
    r_yaw = torch.stack((cos, zero, sin, zero, one, zero, -sin, zero, cos), dim=-1).reshape(-1, 3, 3)
    c, s = math.cos(math.radians(elevation_deg)), math.sin(math.radians(elevation_deg))
    r_tilt = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=vertices.dtype)
    rotation = r_tilt @ r_yaw  # (N, 3, 3)
    return (vertices - pivot) @ rotation.transpose(1, 2) + pivot


def view(synth: Synthesizer, sources: Person | Sequence[Person], frames: int = 36, degrees: float = 360.0,
         elevation: float = 0.0, progress: Progress = None) -> np.ndarray:
    """`frames` views of the first photo's person turned by 0 .. `degrees` (a full turn does not repeat
    its start); further photos (e.g. the back) fill what the first does not show (`visibility_parts`)."""
    if frames < 1:
        raise ValueError(f"a turntable needs at least one frame, got {frames}")
    people = [sources] if isinstance(sources, Person) else list(sources)
    first = people[0]
    src = as_sources(synth, people)
    posed = pose_body(synth.body, first.betas, first.pose[:1])
    cam = torch.from_numpy(np.asarray(first.cam[:1], np.float32))
    yaw = np.linspace(0.0, degrees, frames, endpoint=abs(degrees) % 360.0 != 0.0 or frames == 1)
    turned = turn(posed.vertices, posed.joints[0, 0], yaw, elevation)  # (N, V, 3)
    targets = weak_perspective_project(turned, cam.expand(len(yaw), -1))
    return synth.run(src, targets, visibility_parts(synth, src), progress=progress)
