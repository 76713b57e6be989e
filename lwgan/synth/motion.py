"""Motions of the synthetic data set: iPER's two actions on SMPL's 24-joint tree.

A motion is a trajectory of per-joint XYZ Euler angles in degrees, in the convention of
`lwgan.body.poses` (body frame: Y up, facing +Z, the person's left on +X; R = Rz Ry Rx), plus a turn
(yaw) about the vertical axis. Joint 0 (the pelvis) holds the tilt of the whole body in its own frame
(bending over at the hips, leaning sideways); the yaw turns the body in front of the camera.

The joint limits below are written for the centre and the LEFT side of the body; a right-side joint
mirrors them through the body's sagittal plane, which keeps x and negates y and z. In that left-side
reading:

- shoulder: y < 0 swings the arm forward, z < 0 lowers it from the T-pose (-90 = along the body);
- elbow: y < 0 bends the forearm forward;
- hip: x < 0 swings the thigh forward, z > 0 spreads the legs;
- knee: x > 0 bends the shin backward; ankle: x > 0 points the toes down;
- spine, neck, head: x > 0 bends forward, y turns to the left, z > 0 leans to the person's right.

Every action is clamped to the limits, so what a test reads back always lies inside them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from lwgan.body.cameras import axis_angle_to_matrix
from lwgan.body.poses import SMPL_JOINTS, euler_to_axis_angle, matrix_to_axis_angle
from lwgan.body.priors import joint_limits

Angle = float | np.ndarray

_MIRROR = np.array([1.0, -1.0, -1.0])  # left-side angles -> right-side angles


def clamp_to_limits(euler: np.ndarray) -> np.ndarray:
    """(..., J, 3) Euler degrees -> the same clamped into the fitting prior's joint limits
    (`lwgan.body.priors.joint_limits`), so the synthetic motions never leave what the fit allows."""
    limits = joint_limits()
    return np.clip(euler, limits[..., 0], limits[..., 1])


@dataclasses.dataclass(frozen=True)
class Motion:
    """One action of N frames.

    euler: (N, J, 3) float64 Euler degrees per joint (joint 0: tilt of the whole body), within limits.
    yaw: (N,) float64 degrees of turn about the vertical axis; 0 faces the camera, 180 shows the back.
    segments: (name, first frame, end frame) of each movement, in order; transitions overlap them.
    """

    euler: np.ndarray
    yaw: np.ndarray
    segments: tuple[tuple[str, int, int], ...]

    @property
    def frames(self) -> int:
        return int(self.yaw.shape[0])

    def pose(self) -> np.ndarray:
        """(N, J * 3) float32 axis-angle pose with the global orientation facing the camera (HMR axes):
        R_global = Rx(pi) Ry(yaw) R_tilt, see `lwgan.body.cameras.facing_camera_orient`."""
        euler = torch.from_numpy(self.euler)  # (N, J, 3)
        local = euler_to_axis_angle(euler)  # (N, J, 3)
        yaw = torch.deg2rad(torch.from_numpy(self.yaw))  # (N,)
        zero = torch.zeros_like(yaw)
        turn = axis_angle_to_matrix(torch.stack((zero, yaw, zero), dim=-1))  # (N, 3, 3)
        flip = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0], dtype=torch.float64))  # (3, 3)
        tilt = axis_angle_to_matrix(local[:, 0])  # (N, 3, 3)
        local[:, 0] = matrix_to_axis_angle(flip @ turn @ tilt)
        return local.reshape(self.frames, -1).float().numpy()


class _Track:
    """Builds an (L, J, 3) Euler trajectory joint by joint; pairs are given in left-side terms."""

    def __init__(self, length: int) -> None:
        self.euler = np.zeros((length, len(SMPL_JOINTS), 3))

    def set(self, joint: str, x: Angle = 0.0, y: Angle = 0.0, z: Angle = 0.0) -> None:
        """Add x, y, z (scalars or (L,) arrays, degrees) to the joint's angles."""
        j = SMPL_JOINTS.index(joint)
        for axis, value in enumerate((x, y, z)):
            self.euler[:, j, axis] += value

    def pair(self, base: str, left: tuple[Angle, Angle, Angle], right: tuple[Angle, Angle, Angle]) -> None:
        """Set left_<base> and right_<base>, both given in left-side terms (mirrored for the right)."""
        self.set(f"left_{base}", *left)
        self.set(f"right_{base}", *(np.asarray(v) * m for v, m in zip(right, _MIRROR, strict=True)))


# A movement: (t, length, rng) -> ((L, J, 3) Euler degrees, yaw degrees) for frames t (L,) of a movement
# lasting `length` frames (t in [0, length - 1]; frames outside are clamped by the caller).
Segment = Callable[[np.ndarray, int, np.random.Generator], tuple[np.ndarray, float]]


def _span(length: int) -> float:
    return float(max(length - 1, 1))


def _bump(u: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 over u in [0, 1], flat at both ends."""
    return np.sin(np.pi * np.clip(u, 0.0, 1.0)) ** 2


def _walk(t: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Walking on the spot: thighs swing, the swinging knee bends, arms swing against the legs."""
    period = rng.uniform(22.0, 30.0)
    stride, swing = rng.uniform(20.0, 28.0), rng.uniform(18.0, 28.0)
    phase = 2.0 * np.pi * t / period + rng.uniform(0, 2 * np.pi)
    track = _Track(len(t))
    for side, shift in (("left", 0.0), ("right", np.pi)):
        p = phase + shift
        forward = np.sin(p)  # > 0: this thigh is in front
        in_swing = np.clip(np.cos(p), 0.0, None)  # the leg moving forward, off the ground
        mirror = 1.0 if side == "left" else -1.0
        track.set(f"{side}_hip", x=-stride * forward)
        track.set(f"{side}_knee", x=6.0 + 50.0 * in_swing**2)
        track.set(f"{side}_ankle", x=-8.0 * in_swing + 6.0 * np.clip(-forward, 0, None))
        # the arm swings with the opposite leg: forward when this thigh is behind
        track.set(f"{side}_shoulder", y=mirror * swing * forward, z=mirror * -74.0)
        track.set(f"{side}_elbow", y=mirror * -(15.0 + 12.0 * np.clip(-forward, 0, None)))
    track.set("spine2", y=4.0 * np.sin(phase))
    track.set("spine1", x=4.0)
    yaw = float(rng.choice([-90.0, -60.0, -35.0, 35.0, 60.0, 90.0]) + rng.uniform(-8, 8))
    return track.euler, yaw


def _raise_arms(t: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Both arms rise sideways above the head and come down again, once or twice."""
    cycles = 2 if length > 60 else 1
    u = (t / _span(length)) * cycles % 1.0
    lift = _bump(u)
    forward = rng.uniform(-30.0, 0.0)
    track = _Track(len(t))
    track.pair("shoulder", (0, forward * lift, -65 + 140 * lift), (0, forward * lift, -65 + 140 * lift))
    track.pair("elbow", (0, -10 - 15 * lift, 0), (0, -10 - 15 * lift, 0))
    track.set("head", x=-12.0 * lift)
    return track.euler, float(rng.uniform(-30, 30))


def _wave(t: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One arm up, the forearm waving; the other arm relaxed."""
    lift = _bump(np.clip(t / _span(length) * 1.25, 0, 1))
    beat = np.sin(2 * np.pi * t / rng.uniform(10.0, 14.0))
    track = _Track(len(t))
    up = (0, -20 * lift, -72 + 130 * lift)
    bend = (-25 * lift, -(15 + 55 * lift + 25 * lift * beat), 0)
    rest = (0, 0, -72.0)
    if rng.random() < 0.5:
        track.pair("shoulder", up, rest)
        track.pair("elbow", bend, (0, -12, 0))
    else:
        track.pair("shoulder", rest, up)
        track.pair("elbow", (0, -12, 0), bend)
    track.set("head", y=8.0 * lift)
    return track.euler, float(rng.uniform(-25, 25))


def _bend(t: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Bending over at the hips with a rounded back, arms hanging forward, and up again."""
    depth = _bump(t / _span(length))
    tilt = rng.uniform(35.0, 55.0) * depth
    track = _Track(len(t))
    track.set("pelvis", x=tilt)
    track.pair("hip", (-tilt, 0, 0), (-tilt, 0, 0))  # keeps the legs upright under the tilted pelvis
    for joint in ("spine1", "spine2", "spine3"):
        track.set(joint, x=12.0 * depth)
    track.set("neck", x=-20.0 * depth)
    hang = -(tilt + 36.0 * depth)
    track.pair("shoulder", (0, hang, -72 + 30 * depth), (0, hang, -72 + 30 * depth))
    track.pair("elbow", (0, -12, 0), (0, -12, 0))
    return track.euler, float(rng.choice([-90.0, -70.0, 70.0, 90.0, -30.0, 30.0]))


def _side_bend(t: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Leaning to the side, the opposite arm reaching over the head (both sides in a long segment)."""
    cycles = 2 if length > 60 else 1  # one side, or both sides in turn
    u = t / _span(length) * cycles
    side = np.where(np.floor(u) % 2 == 0, 1.0, -1.0) * (1.0 if rng.random() < 0.5 else -1.0)
    lean = side * _bump(u % 1.0)
    track = _Track(len(t))
    for joint in ("spine1", "spine2", "spine3"):
        track.set(joint, z=13.0 * lean)
    left_up = np.clip(lean, 0, None)  # leaning right lifts the left arm
    right_up = np.clip(-lean, 0, None)
    track.pair("shoulder", (0, -10 * left_up, -68 + 130 * left_up), (0, -10 * right_up, -68 + 130 * right_up))
    track.pair("elbow", (0, -15 - 20 * left_up, 0), (0, -15 - 20 * right_up, 0))
    track.pair("hip", (0, 0, 6), (0, 0, 6))
    return track.euler, float(rng.uniform(-20, 20))


def _squat(t: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A squat with the arms stretched forward for balance, feet flat."""
    depth = _bump(t / _span(length)) * rng.uniform(0.7, 1.0)
    lean, thigh, shin = 25.0 * depth, 65.0 * depth, 30.0 * depth
    track = _Track(len(t))
    track.set("pelvis", x=lean)
    track.pair("hip", (-(thigh + lean), 0, 5 * depth), (-(thigh + lean), 0, 5 * depth))
    track.pair("knee", (thigh + shin, 0, 0), (thigh + shin, 0, 0))
    track.pair("ankle", (-shin, 0, 0), (-shin, 0, 0))
    track.set("neck", x=-15.0 * depth)
    arms = (0, -85 * depth, -72 + 60 * depth)
    track.pair("shoulder", arms, arms)
    track.pair("elbow", (0, -12, 0), (0, -12, 0))
    return track.euler, float(rng.choice([-60.0, -40.0, 40.0, 60.0, 90.0]))


def _march(t: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Marching on the spot with high knees and swinging arms."""
    phase = 2 * np.pi * t / rng.uniform(28.0, 36.0)
    track = _Track(len(t))
    for side, shift, mirror in (("left", 0.0, 1.0), ("right", np.pi, -1.0)):
        up = np.clip(np.sin(phase + shift), 0, None)
        track.set(f"{side}_hip", x=-65.0 * up)
        track.set(f"{side}_knee", x=5.0 + 75.0 * up)
        track.set(f"{side}_ankle", x=15.0 * up)
        other_up = np.clip(np.sin(phase + shift + np.pi), 0, None)
        track.set(f"{side}_shoulder", y=mirror * -40.0 * other_up + mirror * 15.0 * up, z=mirror * -72.0)
        track.set(f"{side}_elbow", y=mirror * -(20.0 + 50.0 * other_up))
    return track.euler, float(rng.choice([-75.0, -45.0, 0.0, 45.0, 75.0]))


def _twist(t: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Turning the upper body left and right with the arms held out and bent."""
    turn = np.sin(2 * np.pi * t / _span(length) * rng.integers(1, 3))
    track = _Track(len(t))
    for joint in ("spine1", "spine2", "spine3"):
        track.set(joint, y=14.0 * turn)
    track.set("head", y=10.0 * turn)
    track.pair("shoulder", (0, -25, -35), (0, -25, -35))
    track.pair("elbow", (0, -75, 0), (0, -75, 0))
    track.pair("hip", (0, 0, 8), (0, 0, 8))
    return track.euler, float(rng.uniform(-25, 25))


def _jumping_jack(t: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Jumping-jack arm and leg opening (feet stay on the floor)."""
    phase = np.sin(np.pi * t / rng.uniform(22.0, 28.0)) ** 2
    track = _Track(len(t))
    track.pair("shoulder", (0, -8, -70 + 130 * phase), (0, -8, -70 + 130 * phase))
    track.pair("elbow", (0, -15, 0), (0, -15, 0))
    track.pair("hip", (0, 0, 2 + 20 * phase), (0, 0, 2 + 20 * phase))
    track.pair("ankle", (0, 0, -12 * phase), (0, 0, -12 * phase))
    return track.euler, float(rng.uniform(-20, 20))


SEGMENTS: dict[str, Segment] = {
    "walk": _walk,
    "raise arms": _raise_arms,
    "wave": _wave,
    "bend": _bend,
    "side bend": _side_bend,
    "squat": _squat,
    "march": _march,
    "twist": _twist,
    "jumping jack": _jumping_jack,
}
A_POSE_SHOULDER = -55.0  # degrees below the T-pose, left-side terms


def turn_motion(frames: int, rng: np.random.Generator) -> Motion:
    """iPER action 1: standing in an A-pose and turning once around (360 degrees, first and last frame
    facing the camera), with a slight sway of the arms and head."""
    t = np.arange(frames, dtype=np.float64)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    yaw = direction * 360.0 * t / max(frames - 1, 1)
    sway = np.sin(2 * np.pi * t / max(frames, 8) * 2 + rng.uniform(0, 2 * np.pi))
    track = _Track(frames)
    arm = A_POSE_SHOULDER + rng.uniform(-8, 8)
    track.pair("shoulder", (0, 0, arm + 3 * sway), (0, 0, arm - 3 * sway))
    track.pair("elbow", (0, -8, 0), (0, -8, 0))
    track.pair("hip", (0, 0, 4), (0, 0, 4))
    track.set("head", x=3.0 * sway)
    return Motion(euler=clamp_to_limits(track.euler), yaw=yaw, segments=(("turn", 0, frames),))


def _split(frames: int, count: int, rng: np.random.Generator) -> list[int]:
    """`count` segment lengths summing to `frames`, each at least a quarter of an even share."""
    share = frames / count
    weights = rng.uniform(0.75, 1.25, size=count)
    lengths = np.floor(weights / weights.sum() * frames).astype(int)
    lengths = np.maximum(lengths, max(1, int(share / 4)))
    lengths[-1] = frames - lengths[:-1].sum()
    return lengths.tolist()


def varied_motion(frames: int, rng: np.random.Generator, transition: int = 16) -> Motion:
    """iPER action 2: a sequence of movements (walking first, then others drawn at random), each faded
    into the next over `transition` frames with a smoothstep, turned to a view chosen per movement."""
    count = int(np.clip(round(frames / 24), 1, 5))
    others = [name for name in SEGMENTS if name != "walk"]
    names = ["walk", *rng.choice(others, size=count - 1, replace=False).tolist()]
    lengths = _split(frames, count, rng)
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    t = np.arange(frames, dtype=np.float64)
    euler = np.zeros((frames, len(SMPL_JOINTS), 3))
    yaw = np.zeros(frames)
    half = min(transition, min(lengths) // 2 or 1) / 2.0
    for k, name in enumerate(names):
        start, stop = bounds[k], bounds[k + 1]
        local = np.clip(t - start, 0, stop - start - 1)
        angles, view = SEGMENTS[name](local, int(stop - start), rng)  # (N, J, 3)
        fade_in = 1.0 if k == 0 else _smoothstep((t - (start - half)) / (2 * half))
        fade_out = 1.0 if k == count - 1 else 1.0 - _smoothstep((t - (stop - half)) / (2 * half))
        weight = np.ones(frames) * fade_in * fade_out  # (N,): the weights sum to 1 at every frame
        euler += weight[:, None, None] * angles
        yaw += weight * view
    segments = tuple((n, int(bounds[k]), int(bounds[k + 1])) for k, n in enumerate(names))
    return Motion(euler=clamp_to_limits(euler), yaw=yaw, segments=segments)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
