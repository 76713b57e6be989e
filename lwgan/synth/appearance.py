"""Who is filmed and what they wear: body shapes, skin tones, hair, and procedural outfits.

Every colour on the body is a function of the REST-POSE position of the surface point (the body model's
template, interpolated at each pixel) and of its body part, so patterns are glued to the surface and
move with it in every pose. Lengths are in metres of the rest pose: Y up, facing +Z, the person's left
on +X. Anchors (waist, neckline, sleeve and trouser ends, the face) come from the model's own joint and
keypoint regressors, so nothing depends on vertex ids.
"""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np

from lwgan.body.model import BodyModel
from lwgan.body.poses import SMPL_JOINTS
from lwgan.synth.face import FaceLayout, Subject, paint_head
from lwgan.synth.patterns import PATTERNS, Garment, colour_name, pattern_weight

SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (250, 220, 196), (236, 192, 160), (222, 170, 132), (198, 142, 104),
    (166, 112, 78), (128, 82, 56), (94, 60, 42), (232, 182, 146),
)  # fmt: skip
HAIR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (28, 22, 20), (62, 40, 28), (108, 72, 42), (196, 156, 96), (140, 62, 32), (150, 148, 146),
)  # fmt: skip
EYE_COLOURS: tuple[tuple[int, int, int], ...] = ((60, 36, 22), (98, 64, 36), (62, 98, 150), (70, 110, 70))
SLEEVES = ("none", "short", "long")
LEGS = ("shorts", "knee", "long")
PRINTS = ("none", "disc", "ring", "star", "diamond")

# Random streams: np.random.default_rng([seed, tag, *keys]). Each tag always takes the same number of
# keys, because numpy's SeedSequence pads the entropy with zeros ([s, t, 1] and [s, t, 1, 0] coincide).
SUBJECT_SET, SUBJECT, OUTFIT_SET, OUTFIT, VIDEO, LOOSE, PHOTO = 1, 2, 3, 4, 5, 6, 7


@dataclasses.dataclass(frozen=True)
class Outfit:
    """Clothes: a top with sleeves, a bottom with a leg length, shoes, optional belt and chest print."""

    top: Garment
    sleeves: str
    sleeve: Garment
    bottom: Garment
    legs: str
    shoes: tuple[int, int, int]
    belt: tuple[int, int, int] | None
    chest_print: str
    print_colour: tuple[int, int, int]

    def describe(self) -> str:
        """One line a person can read, e.g. 'red/white hstripes top, short sleeves; navy long bottom'."""
        sleeve = "" if self.sleeve == self.top or self.sleeves == "none" else f" ({self.sleeve.describe()})"
        parts = [
            f"{self.top.describe()} top, {self.sleeves} sleeves{sleeve}",
            f"{self.bottom.describe()} {self.legs} bottom",
            f"{colour_name(self.shoes)} shoes",
        ]
        if self.belt is not None:
            parts.append(f"{colour_name(self.belt)} belt")
        if self.chest_print != "none":
            parts.append(f"{colour_name(self.print_colour)} {self.chest_print} print")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def stream(seed: int, tag: int, *keys: int) -> np.random.Generator:
    """The random stream of one purpose (a tag above) and its keys (subject, cloth, action indices)."""
    return np.random.default_rng([seed, tag, *keys])


def make_subject(seed: int, index: int, num_betas: int) -> Subject:
    """Subject `index` (0-based) of the data set with this seed; skin tones cycle through a shuffled
    `SKIN_TONES` so neighbouring subjects differ. betas[0] (stature) and betas[1] (build) are uniform in
    [-1.5, 1.5], the rest normal with sd 0.4 clipped to +-1."""
    shared = stream(seed, SUBJECT_SET)
    order, hair_order = shared.permutation(len(SKIN_TONES)), shared.permutation(len(HAIR_COLOURS))
    rng = stream(seed, SUBJECT, index)
    betas = np.clip(rng.normal(0.0, 0.4, size=num_betas), -1.0, 1.0)
    betas[: min(2, num_betas)] = rng.uniform(-1.5, 1.5, size=min(2, num_betas))
    tone = np.asarray(SKIN_TONES[order[index % len(SKIN_TONES)]], dtype=np.float64)
    tone = np.clip(tone * rng.uniform(0.96, 1.04), 0, 255)
    return Subject(
        index=index,
        betas=tuple(float(b) for b in betas.round(4)),
        skin=_triple(tone),
        hair=HAIR_COLOURS[hair_order[index % len(HAIR_COLOURS)]],
        long_hair=bool(rng.random() < 0.4),
        eyes=EYE_COLOURS[int(rng.integers(len(EYE_COLOURS)))],
    )


def make_outfit(seed: int, subject: int, cloth: int) -> Outfit:
    """Outfit `cloth` (0-based) of a subject. The top's pattern and hue are spread over the subject's
    outfits (a shuffled pattern order, hues a golden-ratio step apart) so two outfits always differ."""
    shared = stream(seed, OUTFIT_SET, subject)
    order, base_hue = shared.permutation(len(PATTERNS)), shared.uniform()
    rng = stream(seed, OUTFIT, subject, cloth)
    hue = (base_hue + 0.381966 * cloth) % 1.0
    top = Garment(PATTERNS[order[cloth % len(PATTERNS)]], *_colour_pair(rng, hue), rng.uniform(0.05, 0.09))
    sleeves = SLEEVES[int(rng.integers(len(SLEEVES)))]
    sleeve = top if rng.random() < 0.6 else Garment("plain", _hsv(rng.uniform(), 0.6, 0.8), top.colour_b, 0.1)
    bottom_pattern = "plain" if rng.random() < 0.55 else str(rng.choice(["checks", "vstripes", "hstripes"]))
    bottom = Garment(bottom_pattern, *_colour_pair(rng, (hue + rng.uniform(0.3, 0.7)) % 1.0, dark=True),
                     rng.uniform(0.04, 0.07))
    return Outfit(
        top=top,
        sleeves=sleeves,
        sleeve=sleeve,
        bottom=bottom,
        legs=LEGS[int(rng.integers(len(LEGS)))],
        shoes=_hsv(rng.uniform(), rng.uniform(0.0, 0.6), rng.uniform(0.1, 0.9)),
        belt=_hsv(rng.uniform(0.02, 0.1), 0.6, 0.35) if rng.random() < 0.4 else None,
        chest_print=PRINTS[int(rng.integers(len(PRINTS)))],
        print_colour=_hsv(rng.uniform(), 0.8, 0.95),
    )


def _colour_pair(
    rng: np.random.Generator, hue: float, dark: bool = False
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A main colour of this hue and a second colour that contrasts with it in value or hue."""
    value = rng.uniform(0.2, 0.5) if dark else rng.uniform(0.35, 0.9)
    main = _hsv(hue, rng.uniform(0.45, 0.9), value)
    if rng.random() < 0.5:
        second = _hsv(hue, rng.uniform(0.0, 0.3), 0.95 if value < 0.6 else 0.15)
    else:
        second = _hsv((hue + 0.5) % 1.0, rng.uniform(0.5, 0.9), 0.9 - 0.5 * value)
    return main, second


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    return _triple(np.asarray(colorsys.hsv_to_rgb(h, s, v)) * 255.0)


def _triple(rgb: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(round(float(c))) for c in rgb)
    return r, g, b


@dataclasses.dataclass(frozen=True)
class BodyLayout:
    """Rest-pose anchors (metres) of a body model's mean shape, read from its joint and keypoint regressors.

    joints: (J, 3) SMPL-tree joints; keypoints: (K, 3) in the order of `keypoint_names`;
    part_names: the model's part names (labels index them).
    """

    joints: np.ndarray
    keypoints: np.ndarray
    keypoint_names: tuple[str, ...]
    part_names: tuple[str, ...]

    @classmethod
    def from_body(cls, body: BodyModel) -> BodyLayout:
        """Anchors of the mean shape in the rest pose (template vertices through the regressors)."""
        rest = body.smpl.v_template.detach().double().cpu()  # (V, 3)
        joints = body.smpl.J_regressor.detach().double().cpu() @ rest  # (J, 3)
        keypoints = body.kp_regressor.detach().double().cpu() @ rest  # (K, 3)
        if joints.shape[0] != len(SMPL_JOINTS):
            raise ValueError(f"{body.source}: the synthetic data needs SMPL's {len(SMPL_JOINTS)}-joint tree, "
                             f"the model has {joints.shape[0]} joints")
        return cls(joints.numpy(), keypoints.numpy(), tuple(body.keypoint_names), tuple(body.part_names))

    def joint(self, name: str) -> np.ndarray:
        return self.joints[SMPL_JOINTS.index(name)]

    def keypoint(self, name: str) -> np.ndarray:
        return self.keypoints[self.keypoint_names.index(name)]

    def face(self) -> FaceLayout:
        return FaceLayout(
            eyes=(self.keypoint("left_eye"), self.keypoint("right_eye")),
            nose=self.keypoint("nose"),
            ear_z=float(0.5 * (self.keypoint("left_ear")[2] + self.keypoint("right_ear")[2])),
            ear_y=float(0.5 * (self.keypoint("left_ear")[1] + self.keypoint("right_ear")[1])),
        )


class Texturer:
    """Albedo of a subject in an outfit at surface points given by rest position and body part.

    `albedo(rest, part)`: rest (P, 3) float rest-pose positions, part (P,) int part labels
    -> (P, 3) float32 RGB in [0, 1].
    """

    def __init__(self, layout: BodyLayout, subject: Subject, outfit: Outfit) -> None:
        self.layout, self.subject, self.outfit = layout, subject, outfit
        names = layout.part_names
        self._part = {n: names.index(n) for n in names}
        joint = layout.joint
        self.neck_y = float(joint("neck")[1])
        self.waist_y = float(0.35 * joint("spine1")[1] + 0.65 * joint("pelvis")[1]) + 0.03
        self.chest = np.array([0.0, 0.5 * (joint("spine3")[1] + joint("neck")[1]) - 0.02])
        self.shoulder_x = float(abs(joint("left_shoulder")[0]))
        elbow_x, wrist_x = float(abs(joint("left_elbow")[0])), float(abs(joint("left_wrist")[0]))
        self.armpit_y = float(joint("left_shoulder")[1]) - 0.07
        self.sleeve_end = {"none": self.shoulder_x - 0.025, "short": 0.5 * (self.shoulder_x + elbow_x) + 0.02,
                           "long": wrist_x - 0.02}[outfit.sleeves]
        knee_y, ankle_y = float(joint("left_knee")[1]), float(joint("left_ankle")[1])
        self.hem_y = {"shorts": knee_y + 0.13, "knee": knee_y - 0.06, "long": ankle_y - 0.05}[outfit.legs]
        self.hip = joint("left_hip")
        self.ankle = joint("left_ankle")
        self.arm_axis = joint("left_shoulder")[1:]  # (y, z) of the T-posed arms' axis
        self.face = layout.face()

    def _is(self, part: np.ndarray, *names: str) -> np.ndarray:
        return np.isin(part, [self._part[n] for n in names if n in self._part])

    def albedo(self, rest: np.ndarray, part: np.ndarray) -> np.ndarray:
        out = np.empty((rest.shape[0], 3), dtype=np.float32)
        out[:] = np.asarray(self.subject.skin, dtype=np.float32) / 255.0
        x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
        outfit = self.outfit

        torso = self._is(part, "torso")
        arms = self._is(part, "left_upper_arm", "right_upper_arm", "left_lower_arm", "right_lower_arm")
        along = np.abs(x)  # distance from the body's midline; along the arms in the T-posed rest pose
        front = np.clip(z / 0.08, 0.0, 1.0)
        neck_hole = y > self.neck_y - 0.035 - 0.045 * front + 4.0 * x * x  # a smooth round neckline
        low = y < self.armpit_y
        covered = (torso & ((along < self.sleeve_end) | low)) | (arms & (along < self.sleeve_end))
        top = covered & (y >= self.waist_y) & ~neck_hole
        body_top = top & torso & ((along < self.shoulder_x) | low)
        around = np.arctan2(x, z)  # (P,) angle around the vertical body axis, 0 at the front
        paint_garment(out, body_top, outfit.top, around, y, radius=0.15)
        if outfit.chest_print != "none":
            dx, dy = x - self.chest[0], y - self.chest[1]
            mark = body_top & (z > 0.04) & _print_shape(outfit.chest_print, dx, dy, 0.06)
            out[mark] = np.asarray(outfit.print_colour, dtype=np.float32) / 255.0
        sleeve = top & ~body_top
        arm_around = np.arctan2(y - self.arm_axis[0], z - self.arm_axis[1]) * np.sign(x)
        paint_garment(out, sleeve, outfit.sleeve, arm_around, along, radius=0.045)

        legs = self._is(part, "left_upper_leg", "right_upper_leg", "left_lower_leg", "right_lower_leg")
        bottom = (torso & (y < self.waist_y)) | (legs & (y > self.hem_y))
        t = np.clip((y - self.hip[1]) / (self.ankle[1] - self.hip[1]), 0.0, 1.0)
        leg_x = self.hip[0] + t * (self.ankle[0] - self.hip[0])
        leg_around = np.where(torso, around * 0.15 / 0.07, np.arctan2(np.abs(x) - leg_x, z) * np.sign(x))
        paint_garment(out, bottom, outfit.bottom, leg_around, y, radius=0.07)
        if outfit.belt is not None:
            belt = torso & (np.abs(y - self.waist_y) < 0.018)
            out[belt] = np.asarray(outfit.belt, dtype=np.float32) / 255.0

        feet = self._is(part, "left_foot", "right_foot")
        out[feet] = np.asarray(outfit.shoes, dtype=np.float32) / 255.0
        sole = feet & (y < float(rest[feet, 1].min(initial=0.0)) + 0.018)
        out[sole] *= 0.45

        head = self._is(part, "head")
        if self.subject.long_hair:  # long hair also falls over the back of the neck
            head = head | (torso & (y > self.neck_y - 0.04) & (z < 0.0))
        if head.any():
            out[head] = paint_head(out[head], rest[head], self.face, self.subject)
        return out


def paint_garment(out: np.ndarray, where: np.ndarray, garment: Garment, angle: np.ndarray, along: np.ndarray,
                  radius: float) -> None:
    """Fill `where` of out (P, 3) float32 with the garment's pattern; angle (P,) radians around the limb /
    trunk / skirt axis, along (P,) metres along it, radius the axis' rough radius (metres) for arc lengths."""
    if not where.any():
        return
    weight = pattern_weight(garment, angle[where], along[where], radius)  # (P',)
    a = np.asarray(garment.colour_a, dtype=np.float32) / 255.0
    b = np.asarray(garment.colour_b, dtype=np.float32) / 255.0
    out[where] = a + weight[:, None].astype(np.float32) * (b - a)


def _print_shape(kind: str, dx: np.ndarray, dy: np.ndarray, size: float) -> np.ndarray:
    """(P,) bool: inside the chest print of `kind` centred at (0, 0), about `size` metres in radius."""
    r = np.hypot(dx, dy)
    if kind == "disc":
        return r < size
    if kind == "ring":
        return np.abs(r - 0.75 * size) < 0.2 * size
    if kind == "diamond":
        return np.abs(dx) + np.abs(dy) < size
    if kind == "star":
        angle = np.arctan2(dy, dx) - np.pi / 2
        return r < size * (0.45 + 0.55 * ((np.cos(5 * angle) + 1) / 2) ** 2)
    raise ValueError(f"unknown chest print {kind!r}; known: {', '.join(PRINTS)}")
