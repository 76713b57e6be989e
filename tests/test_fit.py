"""`fit_video` on keypoints projected from known bodies."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lwgan.body.cameras import axis_angle_to_matrix, facing_camera_orient, weak_perspective_project
from lwgan.body.fitting import (
    IMPLAUSIBLE_SCALE,
    LOW_CONFIDENCE,
    NO_PERSON,
    NOT_CONVERGED,
    FitInit,
    FitOptions,
    fit_video,
    fit_videos,
    fitted_joints,
)
from lwgan.body.fitting_state import scale_outliers, trunk_outliers
from lwgan.body.model import BodyModel
from lwgan.body.pose_metrics import pa_mpjpe
from lwgan.body.poses import euler_to_axis_angle, pose_from_angles
from lwgan.geometry import ndc_to_pixel
from lwgan.render.raster import RasterSettings, rasterize

SIZE = 256
FAST = FitOptions(camera_iterations=30)


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.default()


@dataclasses.dataclass(frozen=True)
class Truth:
    betas: torch.Tensor  # (S,)
    pose: torch.Tensor  # (N, 72)
    cam: torch.Tensor  # (N, 3)
    joints: torch.Tensor  # (N, 24, 3)
    keypoints: torch.Tensor  # (N, 17, 3) pixels + confidence 1
    vertices: torch.Tensor  # (N, V, 3) projected


def make_truth(body: BodyModel, frames: int, yaw_deg: float = -30.0,
               shape: tuple = (0.8, -0.5, 0.3)) -> Truth:
    """A short clip: the left arm rising sideways and the right knee bending, turned by yaw, with
    non-zero shape (its first betas) and a camera filling ~60 % of the image height."""
    t = torch.linspace(0.0, 1.0, frames)
    poses = []
    for u in t.tolist():
        angles = {
            "left_shoulder": (0.0, -10.0, -70.0 + 80.0 * u), "right_shoulder": (0.0, 10.0, 65.0),
            "left_elbow": (0.0, -30.0, 0.0), "right_elbow": (0.0, 20.0, 0.0),
            "right_hip": (-30.0 * u, 0.0, -5.0), "right_knee": (50.0 * u, 0.0, 0.0),
            "spine2": (5.0, 5.0 * u, 0.0),
        }  # fmt: skip
        poses.append(pose_from_angles(angles))
    pose = torch.stack(poses)  # (N, 72)
    yaw = torch.deg2rad(torch.full((frames,), yaw_deg))
    pose[:, :3] = facing_camera_orient(yaw)
    betas = torch.zeros(body.num_betas)
    betas[: len(shape)] = torch.tensor(shape)
    with torch.no_grad():
        out = body(betas[None].expand(frames, -1), pose)
    cam = torch.tensor([0.65, 0.05, 0.1]).repeat(frames, 1)
    cam[:, 1] += 0.02 * t
    kp = weak_perspective_project(out.keypoints, cam)[..., :2]  # (N, K, 2) NDC
    pixels = ndc_to_pixel(kp, SIZE, SIZE)
    keypoints = torch.cat((pixels, torch.ones(frames, pixels.shape[1], 1)), dim=-1)
    vertices = weak_perspective_project(out.vertices, cam)
    return Truth(betas, pose, cam, out.joints, keypoints, vertices)


@pytest.fixture(scope="module")
def truth(body) -> Truth:
    return make_truth(body, 6)


@pytest.fixture(scope="module")
def fitted(body, truth):
    return fit_video(truth.keypoints, SIZE, body, FAST)


def test_recovers_a_known_pose_shape_and_camera(body, truth, fitted):
    assert fitted.pose.shape == (6, 72) and fitted.cam.shape == (6, 3) and fitted.betas.shape == (10,)
    assert fitted.status.dtype == torch.uint8 and int(fitted.status.max()) == 0
    assert float(fitted.reprojection_px.max()) < 1.0  # pixels
    error = pa_mpjpe(fitted_joints(body, fitted), truth.joints)  # (N,) metres
    assert float(error.mean()) < 0.03, error
    torch.testing.assert_close(fitted.cam[:, 0], truth.cam[:, 0], rtol=0.08, atol=0.0)
    # The root joint lands where it should in the image (the camera's offset is tied to the shape).
    root_fit = weak_perspective_project(fitted_joints(body, fitted)[:, :1], fitted.cam)[:, 0, :2]
    root_true = weak_perspective_project(truth.joints[:, :1], truth.cam)[:, 0, :2]
    assert float((root_fit - root_true).abs().max()) * SIZE / 2 < 3.0  # pixels
    # Facing: the body's forward axis (+Z) turned by -30 degrees, seen from the front.
    forward = axis_angle_to_matrix(fitted.pose[:, :3])[:, :, 2]  # (N, 3) in camera axes
    yaw = torch.rad2deg(torch.atan2(forward[:, 0], -forward[:, 2]))
    assert float((yaw + 30.0).abs().max()) < 10.0


def test_loss_history_and_fitted_joints_agree_with_the_body_model(body, fitted):
    assert {"camera/total", "pose/total", "pose/keypoints", "pose/prior"} <= set(fitted.loss)
    assert len(fitted.loss["pose/total"]) == FAST.pose_iterations
    assert fitted.loss["pose/keypoints"][-1] < fitted.loss["pose/keypoints"][0]
    with torch.no_grad():
        joints = body(fitted.betas[None].expand(6, -1), fitted.pose).joints
    torch.testing.assert_close(fitted_joints(body, fitted), joints, atol=1e-5, rtol=0.0)


def test_a_back_view_is_recognised_from_the_shoulder_order(body):
    clip = make_truth(body, 4, yaw_deg=160.0)
    result = fit_video(clip.keypoints, SIZE, body, FAST)
    forward = axis_angle_to_matrix(result.pose[:, :3])[:, :, 2]
    yaw = torch.rad2deg(torch.atan2(forward[:, 0], -forward[:, 2]))
    assert float(((yaw - 160.0 + 180.0) % 360.0 - 180.0).abs().max()) < 20.0
    assert float(pa_mpjpe(fitted_joints(body, result), clip.joints).mean()) < 0.04


def test_a_frame_without_a_person_is_flagged_and_filled_from_its_neighbours(body, truth, fitted):
    keypoints = truth.keypoints.clone()
    keypoints[2, :, 2] = 0.0
    result = fit_video(keypoints, SIZE, body, FAST)
    assert result.status[2] & NO_PERSON and not (result.status[[0, 1, 3, 4, 5]] & NO_PERSON).any()
    assert math.isnan(float(result.reprojection_px[2]))
    assert float(result.reprojection_px[[0, 1, 3, 4, 5]].max()) < 1.0
    joints = fitted_joints(body, result)
    neighbours = pa_mpjpe(joints[[1, 3]], truth.joints[[1, 3]])
    assert float(neighbours.max()) < 0.04
    # The missing frame lies between its neighbours.
    gap = (joints[2] - 0.5 * (joints[1] + joints[3])).norm(dim=-1).mean()
    assert float(gap) < 0.03


def test_scale_outliers_by_hand():
    valid = torch.ones(9, dtype=torch.bool)
    steady = torch.tensor([1.0, 1.02, 0.99, 1.0, 2.1, 1.01, 1.0, 0.98, 1.0])
    assert scale_outliers(steady, valid, 3, 1.3).tolist() == [i == 4 for i in range(9)]
    assert not scale_outliers(steady, valid, 3, 0.0).any()  # off
    assert not scale_outliers(steady, valid, 3, 2.2).any()  # within the ratio
    small = steady.clone()
    small[4] = 1.0 / 2.1  # shrinking counts the same as growing
    assert scale_outliers(small, valid, 3, 1.3).tolist() == [i == 4 for i in range(9)]
    ramp = torch.linspace(1.0, 1.6, 9)  # walking towards the camera: a steady change is no outlier
    assert not scale_outliers(ramp, valid, 3, 1.3).any()
    # frames without a person neither count nor are judged; fewer than three judges = no verdict
    holes = torch.tensor([True, False, False, False, True, False, False, False, True])
    assert not scale_outliers(steady, holes, 3, 1.3).any()
    assert scale_outliers(steady, holes, 4, 1.3).tolist() == [i == 4 for i in range(9)]


def test_a_frame_of_twice_the_size_is_flagged_and_filled_from_its_neighbours(body):
    clip = make_truth(body, 9)
    keypoints = clip.keypoints.clone()
    centre = keypoints[4, :, :2].mean(dim=0)
    keypoints[4, :, :2] = centre + 2.0 * (keypoints[4, :, :2] - centre)  # a fit there draws a giant
    result = fit_video(keypoints, SIZE, body, FAST)
    assert result.status[4] & IMPLAUSIBLE_SCALE and not (result.status[[0, 1, 2, 3, 5, 6, 7, 8]]).any()
    assert math.isnan(float(result.reprojection_px[4]))
    torch.testing.assert_close(result.cam[:, 0], clip.cam[:, 0], rtol=0.08, atol=0.0)  # frame 4 too
    # either check alone catches a giant (its trunk too is twice the body's at the neighbours' size)
    for check in ("max_scale_ratio", "max_trunk_ratio"):
        alone = fit_video(keypoints, SIZE, body, FitOptions(**{**dataclasses.asdict(FAST), check: 0.0}))
        assert alone.status[4] & IMPLAUSIBLE_SCALE, check
    off = FitOptions(**{**dataclasses.asdict(FAST), "max_scale_ratio": 0.0, "max_trunk_ratio": 0.0})
    unguarded = fit_video(keypoints, SIZE, body, off)
    assert int(unguarded.status[4]) == 0 and float(unguarded.cam[4, 0]) > 1.5 * float(clip.cam[4, 0])


def _trunk_keypoints(lengths: list[float], hips: float = 0.3) -> torch.Tensor:
    """(n, 17, 2) NDC keypoints of an upright figure whose shoulder-to-hip sides have `lengths`, shoulders
    0.4 apart and hips `hips` apart."""
    target = torch.zeros(len(lengths), 17, 2)
    for i, length in enumerate(lengths):
        target[i, 5] = torch.tensor([0.2, -0.3])  # left shoulder
        target[i, 6] = torch.tensor([-0.2, -0.3])
        target[i, 11] = torch.tensor([hips / 2, -0.3 + length])  # left hip
        target[i, 12] = torch.tensor([-hips / 2, -0.3 + length])
    return target


def test_trunk_outliers_by_hand():
    valid = torch.ones(9, dtype=torch.bool)
    trunk = torch.tensor([1.0, 1.0, 0.8, 0.6])  # model units: the two sides, shoulders, hips
    scale = torch.full((9,), 0.5)  # so a trunk facing the camera spans 0.5 NDC tall, 0.4 and 0.3 wide
    drawn = [0.5, 0.49, 0.5, 0.51, 0.8, 0.5, 0.48, 0.5, 0.5]  # frame 4: 1.6 times as long
    target = _trunk_keypoints(drawn)
    lengths = torch.hypot(target[:, 5, 0] - target[:, 11, 0], target[:, 5, 1] - target[:, 11, 1])
    weight = torch.ones(9, 17)
    only_4 = [i == 4 for i in range(9)]
    assert trunk_outliers(target, weight, trunk, scale, valid, 3, 1.3).tolist() == only_4
    assert not trunk_outliers(target, weight, trunk, scale, valid, 3, 0.0).any()  # off
    ratio = float(lengths[4] / 0.5)
    assert not trunk_outliers(target, weight, trunk, scale, valid, 3, ratio + 0.01).any()
    assert trunk_outliers(target, weight, trunk, scale, valid, 3, ratio - 0.01)[4]
    # its own fitted scale, which the stretched keypoints pull up, does not excuse the frame
    grown = scale.clone()
    grown[4] = 0.5 * ratio
    assert trunk_outliers(target, weight, trunk, grown, valid, 3, 1.3).tolist() == only_4
    # hips spread twice as wide as the body's, the sides of the trunk as they are
    wide = torch.cat([_trunk_keypoints([0.5], hips=0.6 if i == 4 else 0.3) for i in range(9)])
    assert trunk_outliers(wide, weight, trunk, scale, valid, 3, 1.3).tolist() == only_4
    # a trunk foreshortened (bending towards the camera) is no outlier, nor is one whose hips are not seen
    short = _trunk_keypoints([0.5, 0.5, 0.5, 0.5, 0.2, 0.5, 0.5, 0.5, 0.5])
    assert not trunk_outliers(short, weight, trunk, scale, valid, 3, 1.3).any()
    unseen = weight.clone()
    unseen[4, 11:13] = 0.0
    assert not trunk_outliers(target, unseen, trunk, scale, valid, 3, 1.3).any()
    # walking towards the camera: size and trunk grow together
    ramp = torch.linspace(0.5, 0.9, 9)
    walking = torch.cat([_trunk_keypoints([0.5]) * (float(r) / 0.5) for r in ramp])
    assert not trunk_outliers(walking, weight, trunk, ramp, valid, 3, 1.3).any()
    # frames without a person neither count nor are judged; fewer than two judges = no verdict
    holes = torch.tensor([True, False, False, False, True, False, False, False, True])
    assert not trunk_outliers(target, weight, trunk, scale, holes, 3, 1.3).any()
    assert trunk_outliers(target, weight, trunk, scale, holes, 4, 1.3).tolist() == only_4


def test_a_frame_whose_keypoints_stretch_the_torso_is_flagged_and_filled_from_its_neighbours(body):
    """A detection stretched across the frame: frame 4's hips, knees and ankles pushed down so that its
    torso is 1.6 times as long as the body's (everything above the hips where the truth has it). The fit
    sets it aside and fills it from its neighbours, close to the truth; without the check it bends the
    body to reach the keypoints."""
    clip = make_truth(body, 9)
    keypoints = clip.keypoints.clone()
    hips = keypoints[4, 11:13, :2].mean(dim=0)
    shoulders = keypoints[4, 5:7, :2].mean(dim=0)
    keypoints[4, 11:, :2] += 0.6 * (hips - shoulders)  # the lower body moved down by 0.6 of the torso
    result = fit_video(keypoints, SIZE, body, FAST)
    assert result.status[4] & IMPLAUSIBLE_SCALE and not (result.status[[0, 1, 2, 3, 5, 6, 7, 8]]).any()
    assert math.isnan(float(result.reprojection_px[4]))
    guarded = float(pa_mpjpe(fitted_joints(body, result)[4:5], clip.joints[4:5]))
    assert guarded < 0.04, guarded
    off = FitOptions(**{**dataclasses.asdict(FAST), "max_trunk_ratio": 0.0})
    unguarded = fit_video(keypoints, SIZE, body, off)
    assert not unguarded.status[4] & IMPLAUSIBLE_SCALE
    assert float(pa_mpjpe(fitted_joints(body, unguarded)[4:5], clip.joints[4:5])) > 2 * guarded


def test_a_video_without_any_person_is_not_fatal(body, truth):
    keypoints = truth.keypoints.clone()
    keypoints[..., 2] = 0.0
    result = fit_video(keypoints, SIZE, body, FAST)
    assert bool((result.status & NO_PERSON).all()) and bool((result.status & LOW_CONFIDENCE).all())
    assert bool(torch.isfinite(result.pose).all()) and bool(torch.isfinite(result.cam).all())
    assert bool(result.reprojection_px.isnan().all())


def test_chunked_fit_matches_the_whole_video_fit(body):
    clip = make_truth(body, 12)
    whole = fit_video(clip.keypoints, SIZE, body, FAST)
    chunked = fit_video(clip.keypoints, SIZE, body, dataclasses.replace(FAST, chunk_size=4))
    assert chunked.pose.shape == whole.pose.shape
    assert len(chunked.loss["pose/total"]) == 3 * FAST.pose_iterations  # three chunks
    difference = (fitted_joints(body, chunked) - fitted_joints(body, whole)).norm(dim=-1).mean(dim=-1)
    assert float(difference.mean()) < 0.03 and float(difference.max()) < 0.05  # metres, camera axes
    assert float(pa_mpjpe(fitted_joints(body, chunked), clip.joints).mean()) < 0.035
    assert float(chunked.reprojection_px.max()) < 1.5


def test_videos_fitted_together_are_each_fitted_as_if_alone(body):
    """fit_videos optimises short videos as one problem: each keeps its own shape, path and smoothness, so
    each result is fit_video's on that video alone (to float rounding), whatever is fitted beside it."""
    options = dataclasses.replace(FAST, chunk_size=16)
    tall = make_truth(body, 6, yaw_deg=-30.0, shape=(2.0, 0.0, 0.0))
    back = make_truth(body, 5, yaw_deg=160.0, shape=(-1.5, 1.0, 0.0))
    empty = tall.keypoints.clone()
    empty[..., 2] = 0.0  # nobody: fitted alone, flagged
    long = make_truth(body, 18)  # longer than a chunk: fitted alone, chunk by chunk
    gap = back.keypoints.clone()
    gap[1, :, 2] = 0.0
    clips = [tall.keypoints, empty, gap, long.keypoints, back.keypoints]
    together = fit_videos(clips, SIZE, body, options)
    alone = [fit_video(clip, SIZE, body, options) for clip in clips]
    for i, (a, b) in enumerate(zip(together, alone, strict=True)):
        assert torch.equal(a.status, b.status), i
        torch.testing.assert_close(a.betas, b.betas, atol=2e-3, rtol=0.0, msg=f"video {i}")
        torch.testing.assert_close(a.pose, b.pose, atol=1e-2, rtol=0.0, msg=f"video {i}")
        torch.testing.assert_close(a.cam, b.cam, atol=1e-3, rtol=0.0, msg=f"video {i}")
    assert float((together[0].betas - together[4].betas).abs().max()) > 0.05  # a shape each
    for result, clip in ((together[0], tall), (together[4], back), (together[3], long)):
        assert float(pa_mpjpe(fitted_joints(body, result), clip.joints).mean()) < 0.04
    assert bool((together[1].status & NO_PERSON).all()) and together[2].status[1] & NO_PERSON


def test_fitting_is_deterministic(body, truth, fitted):
    again = fit_video(truth.keypoints, SIZE, body, FAST)
    for name in ("betas", "pose", "cam", "status", "reprojection_px"):
        assert torch.equal(getattr(again, name), getattr(fitted, name)), name
    assert again.loss == fitted.loss


def test_a_start_from_the_truth_stays_near_it(body, truth):
    init = FitInit(pose=truth.pose, betas=truth.betas, cam=truth.cam)
    result = fit_video(truth.keypoints, SIZE, body, FAST, init=init)
    assert "camera/total" not in result.loss  # no orientation search with a given pose
    error = pa_mpjpe(fitted_joints(body, result), truth.joints)
    # The prior pulls along what 2D keypoints cannot see (depth), so the fit drifts a little.
    assert float(error.max()) < 0.03


def test_noisy_keypoints_give_a_larger_error_and_a_flag(body, truth):
    keypoints = truth.keypoints.clone()
    generator = torch.Generator().manual_seed(0)
    keypoints[3, :, :2] += 40.0 * torch.randn(17, 2, generator=generator)  # a frame of garbage
    fitted = dataclasses.replace(FAST, converged_error=8.0, max_trunk_ratio=0.0)  # fitted, not set aside
    result = fit_video(keypoints, SIZE, body, fitted)
    assert result.status[3] & NOT_CONVERGED and float(result.reprojection_px[3]) > 8.0
    assert not (result.status[[0, 1, 4, 5]] & NOT_CONVERGED).any()
    # by default its trunk, drawn wider than the body's, has it set aside and filled from its neighbours
    guarded = fit_video(keypoints, SIZE, body, dataclasses.replace(FAST, converged_error=8.0))
    assert guarded.status[3] & IMPLAUSIBLE_SCALE and not guarded.status[[0, 1, 2, 4, 5]].any()


def test_the_silhouette_term_pulls_the_camera_towards_the_mask(body, truth):
    frames = 2
    masks = rasterize(truth.vertices[:frames], body.faces, RasterSettings(SIZE, SIZE)).face_index >= 0
    cam = truth.cam[:frames].clone()
    cam[:, 0] *= 0.9  # 10 % too small
    options = FitOptions(
        pose_iterations=0, keypoint_weight=0.0, silhouette_weight=10.0, silhouette_iterations=12,
        silhouette_size=48, pose_lr=0.01, global_lr=0.02,
    )  # fmt: skip
    init = FitInit(pose=truth.pose[:frames], betas=truth.betas, cam=cam)
    result = fit_video(truth.keypoints[:frames], SIZE, body, options, masks=masks, init=init)
    history = result.loss["silhouette/silhouette"]
    assert len(history) == 12 and history[-1] < history[0]
    assert bool((result.cam[:, 0] > cam[:, 0]).all())


def test_bad_inputs_name_the_problem(body, truth):
    with pytest.raises(ValueError, match="K=16"):
        fit_video(truth.keypoints[:, :16], SIZE, body)
    with pytest.raises(ValueError, match="image_size"):
        fit_video(truth.keypoints, 0, body)
    with pytest.raises(ValueError, match="FitInit.pose"):
        fit_video(truth.keypoints, SIZE, body, FAST, init=FitInit(pose=torch.zeros(2, 72)))
    with pytest.raises(ValueError, match="FitOptions.pose_iterations"):
        FitOptions(pose_iterations=-1)
    with pytest.raises(ValueError, match="FitOptions.pose_lr"):
        FitOptions(pose_lr=0.0)


def test_euler_angles_of_the_synthetic_motions_roundtrip():
    # The fit's joint parametrisation is the motion convention of lwgan.body.poses.
    from lwgan.body.priors import euler_to_matrix, matrix_to_euler

    degrees = torch.tensor([[10.0, -40.0, 70.0], [-25.0, 80.0, -120.0], [0.0, 0.0, 0.0]])
    expected = axis_angle_to_matrix(euler_to_axis_angle(degrees))
    rotation = euler_to_matrix(torch.deg2rad(degrees))
    torch.testing.assert_close(rotation, expected, atol=1e-5, rtol=0.0)
    torch.testing.assert_close(torch.rad2deg(matrix_to_euler(rotation)), degrees, atol=1e-3, rtol=0.0)


def test_a_first_chunk_without_a_person_leaves_the_shape_to_the_next(body):
    clip = make_truth(body, 8)
    keypoints = clip.keypoints.clone()
    keypoints[:4, :, 2] = 0.0
    keypoints[5, 3, :2] = float("nan")  # a lost keypoint position, whatever its confidence says
    result = fit_video(keypoints, SIZE, body, dataclasses.replace(FAST, chunk_size=4))
    assert bool((result.status[:4] & NO_PERSON).all()) and not (result.status[4:] & NO_PERSON).any()
    assert float(result.betas.abs().max()) > 0.0  # fitted in the second chunk
    assert bool(torch.isfinite(result.pose).all()) and float(result.reprojection_px[4:].max()) < 1.5
    torch.testing.assert_close(result.pose[:4], result.pose[4:5].expand(4, -1))  # the nearest fitted frame


def _arm_directions(body: BodyModel, betas: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) unit vectors of the left upper arm and forearm (COCO shoulder -> elbow -> wrist)."""
    with torch.no_grad():
        points = body(betas[None].expand(len(pose), -1), pose).keypoints  # (N, 17, 3) camera axes
    return torch.nn.functional.normalize(points[:, [7, 9]] - points[:, [5, 7]], dim=-1)


def test_the_world_term_places_what_the_keypoints_leave_open(body, truth):
    """The left arm's 2D keypoints withheld: the 2D fit leaves it where its prior puts it, the world term
    (3D keypoints from the body model's own forward pass, as a detector's metric estimate) puts it where
    the arm is; an estimate whose left and right lie the other way round across the image from the
    keypoints', or that is not visible, changes nothing."""
    keypoints = truth.keypoints.clone()
    keypoints[:, [7, 9], 2] = 0.0  # the left elbow and wrist unseen in 2D
    with torch.no_grad():
        world3d = body(truth.betas[None].expand(len(truth.pose), -1), truth.pose).keypoints
    world = torch.cat((world3d, torch.ones(*world3d.shape[:2], 1)), dim=-1)  # (N, 17, 4)
    options = dataclasses.replace(FAST, world_weight=300.0)
    plain = fit_video(keypoints, SIZE, body, options)  # no estimate: the term is off
    guided = fit_video(keypoints, SIZE, body, options, world=world)
    expected = _arm_directions(body, truth.betas, truth.pose)

    def degrees(fit) -> torch.Tensor:
        cosine = (_arm_directions(body, fit.betas, fit.pose) * expected).sum(-1).clamp(-1.0, 1.0)
        return torch.rad2deg(torch.arccos(cosine))  # (N, 2)

    assert float(degrees(plain).mean()) > 25.0
    assert float(degrees(guided).max()) < 12.0
    assert "pose/world" in guided.loss and "pose/world" not in plain.loss
    assert float(guided.reprojection_px.max()) < 1.5  # the 2D keypoints are still followed
    # an estimate facing the other way (its sides swapped across the image), or unseen, is left out
    turned = world[:, [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]]
    unseen = world * torch.tensor([1.0, 1.0, 1.0, 0.0])
    for ignored in (turned, unseen):
        again = fit_video(keypoints, SIZE, body, options, world=ignored)
        torch.testing.assert_close(again.pose, plain.pose, atol=1e-5, rtol=0.0)
    with pytest.raises(ValueError, match=r"world must be an \(N=6, 17, 4\)"):
        fit_video(keypoints, SIZE, body, options, world=world[:, :, :3])
