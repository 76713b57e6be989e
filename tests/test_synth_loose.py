"""The loose pieces of the synthetic set (`lwgan.synth.loose`), checked against the posed body they hang
from: a skirt rides on the waist whatever the pose and lifts behind a kicking knee with the stated lag
(an exponential smoothing, written out here); hair hangs down along gravity from around the back of the
head, also when the head tilts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwgan.body.model import BodyModel
from lwgan.body.poses import SMPL_JOINTS, pose_from_angles
from lwgan.body.sequence import pose_body
from lwgan.synth.loose import _COLS, _HAIR_COLS, _HAIR_ROWS, HAIR, SKIRT, LooseChoice, LooseSet

FRAMES = 12


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.default()


def _pose(angles: dict) -> np.ndarray:
    return pose_from_angles(angles).numpy().astype(np.float32)


def _posed(body: BodyModel, poses: np.ndarray):
    betas = np.zeros(body.num_betas, dtype=np.float32)
    rest = pose_body(body, betas, np.zeros((1, poses.shape[1]), dtype=np.float32))
    posed = pose_body(body, betas, poses)
    names = list(body.keypoint_names)
    ears = posed.keypoints[:, [names.index("left_ear"), names.index("right_ear")]].double().numpy()
    return rest, posed, ears


def _set(body, poses, skirt=(0.45, 1.4, 0.5), hair=(0.25, 0.5)) -> tuple[LooseSet, object]:
    rest, posed, ears = _posed(body, poses)
    loose = LooseSet.for_video(LooseChoice(skirt, hair), rest.vertices[0].double().numpy(),
                               rest.joints[0].double().numpy(), posed.joints.double().numpy(), ears)
    assert loose is not None
    return loose, posed


def test_nothing_loose_is_none_and_the_draw_order_is_fixed(body):
    rest, posed, ears = _posed(body, np.zeros((2, 72), dtype=np.float32))
    assert LooseSet.for_video(LooseChoice(None, None), rest.vertices[0].numpy(), rest.joints[0].numpy(),
                              posed.joints.numpy(), ears) is None
    # the skirt's and the hair's numbers do not depend on whether the other was chosen
    a = LooseChoice.draw(np.random.default_rng(7), 1.0, True)
    b = LooseChoice.draw(np.random.default_rng(7), 0.0, True)
    c = LooseChoice.draw(np.random.default_rng(7), 1.0, False)
    assert b.skirt is None and c.hair is None and a.hair == b.hair and a.skirt == c.skirt


def test_the_skirt_rides_on_the_waist_in_any_pose(body):
    lean = _pose({"spine1": (25, 30, 0), "pelvis": (0, 60, 10)})
    poses = np.stack([np.zeros(72, dtype=np.float32), lean])
    loose, posed = _set(body, poses)
    skirt = np.unique(loose.faces[loose.piece == SKIRT])
    top = skirt[:_COLS]  # the waist ring
    for i in range(2):
        ring = loose.vertices[i, top]
        dist = torch.cdist(torch.from_numpy(ring).float(), posed.vertices[i]).min(dim=1).values
        assert dist.max() < 0.04, (i, float(dist.max()))  # on the body's surface within 4 cm
        hem = loose.vertices[i, skirt[-_COLS:]].mean(axis=0)
        pelvis, spine = posed.joints[i, 0].numpy(), posed.joints[i, SMPL_JOINTS.index("spine1")].numpy()
        up = (spine - pelvis) / np.linalg.norm(spine - pelvis)
        assert 0.2 < float((pelvis - hem) @ up) < 0.6  # the hem hangs below the pelvis along the trunk


def test_the_hem_lifts_behind_a_kick_with_the_stated_lag(body):
    lag = 0.5
    kick = np.zeros((FRAMES, 72), dtype=np.float32)
    kick[4:] = _pose({"left_hip": (-70, 0, 0), "right_hip": (-70, 0, 0)})  # both thighs forward at frame 4
    loose, posed = _set(body, kick, skirt=(0.45, 1.4, lag))
    skirt = np.unique(loose.faces[loose.piece == SKIRT])
    hem = loose.vertices[:, skirt[-_COLS:]].mean(axis=1)  # (N, 3)
    # the hem's forward displacement in the body's frame follows 1 - lag^(k+1) after the step
    pelvis = posed.joints[:, 0].numpy()
    forward = np.cross(posed.joints[:, 1].numpy() - posed.joints[:, 2].numpy(),  # left x up
                       posed.joints[:, 3].numpy() - pelvis)
    forward /= np.linalg.norm(forward, axis=1, keepdims=True)
    ahead = np.einsum("nc,nc->n", hem - pelvis, forward)
    moved = ahead[4:] - ahead[3]
    expected = 1.0 - lag ** np.arange(1, FRAMES - 3)
    assert moved[-1] > 0.05  # it swings forward, after the knees, by centimetres
    np.testing.assert_allclose(moved / moved[-1], expected / expected[-1], atol=0.05)
    assert np.allclose(ahead[:4], ahead[0], atol=1e-6)  # and not before the kick


def test_hair_hangs_from_the_back_of_the_head_along_gravity(body):
    nod = _pose({"neck": (35, 0, 0), "head": (20, 0, 0)})
    poses = np.stack([np.zeros(72, dtype=np.float32), nod])
    loose, posed = _set(body, poses, skirt=None)
    assert (loose.piece == HAIR).all()
    grid = loose.vertices.reshape(2, _HAIR_ROWS, _HAIR_COLS, 3)
    for i in range(2):
        head = posed.joints[i, SMPL_JOINTS.index("head")].numpy()
        top, tips = grid[i, 0], grid[i, -1]
        assert np.linalg.norm(top - head, axis=1).max() < 0.16  # the ring is around the head
        drop = tips[:, 1] - top[:, 1]  # camera y points down: gravity is +y
        assert (drop > 0.12).all()
        nose = posed.keypoints[i, list(body.keypoint_names).index("nose")].numpy()
        # behind the face: the middle strand is further from the nose than the head centre is
        assert np.linalg.norm(top[_HAIR_COLS // 2] - nose) > np.linalg.norm(head - nose)
