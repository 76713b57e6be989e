"""Parts of the synthetic data generator: motions, subjects and outfits, patterns."""

from __future__ import annotations

import numpy as np
import pytest

from lwgan.body.poses import SMPL_JOINTS
from lwgan.body.priors import joint_limits
from lwgan.synth.appearance import make_outfit, make_subject
from lwgan.synth.motion import SEGMENTS, clamp_to_limits, turn_motion, varied_motion
from lwgan.synth.patterns import Garment, pattern_weight


def test_limits_mirror_left_and_right() -> None:
    limits = joint_limits()
    assert limits.shape == (24, 3, 2) and (limits[..., 0] <= limits[..., 1]).all()
    for j, name in enumerate(SMPL_JOINTS):
        if name.startswith("left_"):
            right = SMPL_JOINTS.index("right_" + name[5:])
            np.testing.assert_array_equal(limits[right, 0], limits[j, 0])  # x is kept
            np.testing.assert_array_equal(limits[right, 1:], -limits[j, 1:, ::-1])  # y and z flip
    knee = SMPL_JOINTS.index("left_knee")
    assert limits[knee, 0, 0] == 0.0  # knees do not bend forwards


@pytest.mark.parametrize("seed", range(6))
def test_varied_motion_is_smooth_and_within_limits(seed: int) -> None:
    motion = varied_motion(200, np.random.default_rng(seed))
    limits = joint_limits()
    assert (motion.euler >= limits[..., 0]).all() and (motion.euler <= limits[..., 1]).all()
    assert motion.segments[0][0] == "walk" and len(motion.segments) >= 4
    assert len({name for name, _, _ in motion.segments}) == len(motion.segments)
    assert np.abs(np.diff(motion.euler, axis=0)).max() < 30.0  # degrees per frame: no jumps
    assert np.abs(np.diff(motion.yaw)).max() < 25.0
    assert motion.pose().shape == (200, 72)


def test_every_movement_moves_and_respects_limits() -> None:
    t = np.arange(40, dtype=np.float64)
    for name, segment in SEGMENTS.items():
        euler, yaw = segment(t, len(t), np.random.default_rng(0))
        assert euler.shape == (40, 24, 3) and np.isfinite(yaw), name
        assert np.ptp(euler, axis=0).max() > 10.0, name  # something moves by more than 10 degrees
        assert np.abs(clamp_to_limits(euler) - euler).max() < 1e-9, f"{name} leaves the joint limits"


def test_turn_is_an_a_pose_turning_once() -> None:
    motion = turn_motion(50, np.random.default_rng(1))
    assert abs(abs(motion.yaw[-1] - motion.yaw[0]) - 360.0) < 1e-9 and motion.yaw[0] == 0.0
    shoulder = motion.euler[:, SMPL_JOINTS.index("left_shoulder"), 2]
    assert (shoulder < -40).all() and (shoulder > -70).all()  # arms down and away from the body


def test_subjects_and_outfits_differ() -> None:
    subjects = [make_subject(0, i, 10) for i in range(4)]
    assert len({s.skin for s in subjects}) == 4 and len({s.betas for s in subjects}) == 4
    assert all(abs(b) <= 1.5 for s in subjects for b in s.betas)
    outfits = [make_outfit(0, 0, c) for c in range(3)]
    assert len({o.top.pattern for o in outfits}) == 3
    assert make_outfit(0, 0, 1) == make_outfit(0, 0, 1) and make_subject(5, 2, 10) == make_subject(5, 2, 10)
    assert "top" in outfits[0].describe() and "bottom" in outfits[0].describe()


def test_patterns_close_up_around_the_body() -> None:
    rng = np.random.default_rng(0)
    angles, along = rng.uniform(-np.pi, np.pi, 500), rng.uniform(-0.5, 0.5, 500)
    for pattern in ("hstripes", "vstripes", "checks", "dots", "diagonal"):
        garment = Garment(pattern, (0, 0, 0), (255, 255, 255), 0.07)
        weight = pattern_weight(garment, angles, along, radius=0.15)
        turned = pattern_weight(garment, angles + 2 * np.pi, along, radius=0.15)
        assert np.mean(weight != turned) < 0.01, pattern  # periodic around the body: no seam at the back
        assert 0.1 < weight.mean() < 0.9, pattern
    with pytest.raises(ValueError, match="pattern"):
        Garment("tartan", (0, 0, 0), (0, 0, 0), 0.1)
