"""`lwgan imitate`, `lwgan transfer` and `lwgan view` from a briefly trained checkpoint, on photos and
videos of the tiny synthetic set (real detector, real fit, real generator): output files with the right
frame count and size, the errors a user meets, and the synthesis against the generator's own forward."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from _photos import write_photos
from _small import TINY_TRAIN, build_caches, train_tiny

from lwgan import cli
from lwgan.apps import tasks
from lwgan.apps.personalize import mirrored, personalize, self_pairs
from lwgan.apps.synthesis import Synthesizer
from lwgan.body.model import BodyModel
from lwgan.data.cache import FramesCache
from lwgan.data.smpl_cache import SmplCache
from lwgan.geometry import OUTSIDE
from lwgan.io import write_video
from lwgan.metrics.image import masked_l1
from lwgan.nets.build import read_checkpoint
from lwgan.nets.masks import BACKGROUND_CHANNEL, known_background
from lwgan.train.objective import Batch, generate
from lwgan.train.pairs import PairDataset, PairOptions
from lwgan.warp.flow import flow_valid, visible_faces, warp

pytest.importorskip("mediapipe")
pytestmark = pytest.mark.slow

SIZE = TINY_TRAIN["image_size"]
DRIVING_FRAMES = 5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Caches, checkpoint, params file, and the user's files: a non-square photo of each person and a
    driving mp4 (frames of the synthetic set, as a person would bring them)."""
    root = tmp_path_factory.mktemp("apps")
    caches = build_caches(root / "data", 64, frames_per_action=DRIVING_FRAMES)
    ckpt = train_tiny(caches, root / "models")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"image_size": 64}, "train": TINY_TRAIN,
                                      "fit": {"pose_iterations": 20, "camera_iterations": 8}}))
    images = root / "data" / "synthetic" / "images"
    user = root / "user"
    user.mkdir()
    photos = {}
    for subject in ("001", "002"):
        frame = cv2.imread(str(images / subject / "1" / "1" / "0000.jpg"))
        wide = np.concatenate((frame, np.full((64, 32, 3), 90, np.uint8)), axis=1)  # 64 x 96, off-centre
        photos[subject] = user / f"person_{subject}.png"
        cv2.imwrite(str(photos[subject]), wide)
    frames = [cv2.imread(str(p))[..., ::-1] for p in sorted((images / "001" / "1" / "2").glob("*.jpg"))]
    driving = write_video(user / "driving.mp4", frames, 10.0)
    common = ["--checkpoint", str(ckpt), "--body", str(caches.body), "--params", str(params)]
    return {"root": root, "caches": caches, "ckpt": ckpt, "params": params, "photos": photos,
            "driving": driving, "common": common}


def _video(path):
    capture = cv2.VideoCapture(str(path))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    frames = 0
    while capture.read()[0]:
        frames += 1
    return frames, size


def test_imitate_writes_one_frame_per_driving_frame(setup, tmp_path):
    out = tmp_path / "imitate.mp4"
    code = cli.main(["imitate", "--source", str(setup["photos"]["002"]), "--driving", str(setup["driving"]),
                     "-o", str(out), *setup["common"]])
    assert code == 0
    assert _video(out) == (DRIVING_FRAMES, (SIZE, SIZE))
    record = json.loads((tmp_path / "imitate.mp4.json").read_text())
    assert record["frames"] == DRIVING_FRAMES and record["driving"]["frames"] == DRIVING_FRAMES
    assert record["checkpoint_step"] == TINY_TRAIN["max_steps"] and record["camera"] == "smooth"
    assert record["sources"][0]["frames_without_person"] == 0
    assert record["background"] == "fill"  # "auto": a synthetic-set model on a user's photo
    assert record["fit_world_weight"] == 300.0  # fit.world_weight "auto": a photo and a video are footage


def test_imitate_side_by_side_with_personalisation_and_a_frame_folder(setup, tmp_path):
    folder = setup["root"] / "data" / "synthetic" / "images" / "001" / "1" / "2"
    out = tmp_path / "imitate.avi"
    code = cli.main(["imitate", "--source", str(setup["photos"]["002"]), "--driving", str(folder),
                     "--max-frames", "3", "--camera", "driving", "--personalize", "2", "--side-by-side",
                     "-o", str(out), *setup["common"]])
    assert code == 0
    assert _video(out) == (3, (3 * SIZE, SIZE))  # source | driving | output
    tuned = json.loads((tmp_path / "imitate.avi.json").read_text())["personalization"]
    assert tuned["steps"] == 2 and np.isfinite(tuned["last"]["L_G"]) and "vgg16" in tuned["feature_nets"]


def test_transfer_writes_an_image_and_with_driving_a_video(setup, tmp_path):
    photos = setup["photos"]
    image = tmp_path / "transfer.png"
    assert cli.main(["transfer", "--source", str(photos["001"]), "--reference", str(photos["002"]),
                     "-o", str(image), *setup["common"]]) == 0
    assert cv2.imread(str(image)).shape == (SIZE, SIZE, 3)
    video = tmp_path / "transfer.mp4"
    assert cli.main(["transfer", "--source", str(photos["001"]), "--reference", str(photos["002"]),
                     "--driving", str(setup["driving"]), "--side-by-side", "-o", str(video),
                     *setup["common"]]) == 0
    assert _video(video) == (DRIVING_FRAMES, (4 * SIZE, SIZE))  # clothes | reference | driving | output


def test_view_writes_a_turntable(setup, tmp_path):
    out = tmp_path / "view.mp4"
    assert cli.main(["view", "--source", str(setup["photos"]["002"]), "--frames", "6", "-o", str(out),
                     *setup["common"]]) == 0
    assert _video(out) == (6, (SIZE, SIZE))
    assert json.loads((tmp_path / "view.mp4.json").read_text())["visible_faces"] is True


def test_several_photos_of_one_person(setup, tmp_path):
    later = setup["root"] / "data" / "synthetic" / "images" / "002" / "1" / "2" / "0003.jpg"
    out = tmp_path / "view2.mp4"
    assert cli.main(["view", "--source", str(setup["photos"]["002"]), "--source", str(later), "--frames", "4",
                     "--degrees", "180", "-o", str(out), *setup["common"]]) == 0
    assert _video(out) == (4, (SIZE, SIZE))
    record = json.loads((tmp_path / "view2.mp4.json").read_text())
    assert len(record["sources"]) == 2
    # faces a few pixels across (64 px photos) are not compared
    assert [f["compared"] for f in record["one_person"]["faces"]] == [False, False]


def test_photos_of_two_people_are_refused_unless_told(setup, tmp_path, capsys):
    """The astronaut, and her photo with Grace Hopper's head on her suit (tests/_photos.py): dlib's face
    network tells them apart, so view stops before writing anything and names both files; --any-person
    uses them together; the astronaut and her mirror image pass, their distance recorded."""
    weights = Path(__file__).resolve().parents[1] / "data" / "weights" / "dlib_face.pth"
    if not weights.is_file():
        pytest.skip("dlib's face network is missing: run `make weights`")
    photos = write_photos(tmp_path)
    params = yaml.safe_load(setup["params"].read_text())
    params["train"]["face_weights"] = str(weights)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    common = [*setup["common"][:-1], str(tmp_path / "params.yaml")]
    argv = ["view", "--frames", "2", "--source", str(photos["astronaut"]), "--source", str(photos["hopper"])]
    refused = tmp_path / "refused.mp4"
    assert cli.main([*argv, "-o", str(refused), *common]) == 2
    err = capsys.readouterr().err
    pair = f"--source {photos['astronaut']} and --source {photos['hopper']}"
    assert f"{pair} do not look like one person" in err
    assert "--any-person" in err and not refused.exists()
    told = tmp_path / "told.mp4"
    assert cli.main([*argv, "--any-person", "-o", str(told), *common]) == 0
    assert json.loads((tmp_path / "told.mp4.json").read_text())["one_person"]["checked"] is False
    same = tmp_path / "same.mp4"
    assert cli.main(["view", "--frames", "2", "--source", str(photos["astronaut"]), "--source",
                     str(photos["mirror"]), "-o", str(same), *common]) == 0
    distances = json.loads((tmp_path / "same.mp4.json").read_text())["one_person"]["distances"]
    assert len(distances) == 1 and distances[0]["distance"] < 0.6


def test_visibility_parts_give_every_face_to_exactly_one_photo(setup, synth):
    smpl, frames = SmplCache(setup["caches"].smpl), FramesCache(setup["caches"].frames)
    sources = []
    for video in smpl.videos[:2]:
        fit = smpl.params(video)
        image = cv2.resize(frames.frame(video, int(fit["frame"][0])), (synth.side, synth.side))
        sources.append(synth.source(image, synth.vertices(fit["betas"], fit["pose"][:1], fit["cam"][:1])))
    assert tasks.visibility_parts(synth, sources[:1]) == [None]
    parts = tasks.visibility_parts(synth, sources)
    assert not (parts[0] & parts[1]).any() and (parts[0] | parts[1]).all()
    seen = [visible_faces(s.record.face_index, len(synth.faces))[0] for s in sources]
    assert torch.equal(parts[1], seen[1] & ~seen[0]) and seen[0][parts[0]].sum() == seen[0].sum()


def test_errors_name_the_file(setup, tmp_path, capsys):
    common, photo = setup["common"], str(setup["photos"]["002"])
    blank = tmp_path / "empty_room.png"
    cv2.imwrite(str(blank), np.full((64, 64, 3), 128, np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    cases = [
        (["view", "--source", str(blank), "-o", str(tmp_path / "a.mp4")],
         f"no person was found in the image {blank}"),
        (["view", "--source", str(broken), "-o", str(tmp_path / "b.mp4")],
         f"cannot read {broken} as an image"),
        (["imitate", "--source", photo, "--driving", str(broken), "-o", str(tmp_path / "c.mp4")],
         f"video {broken} has no frame that could be decoded"),
        (["view", "--source", photo, "-o", str(tmp_path / "d.gif")], "must end in .mp4 or .avi"),
    ]
    for argv, message in cases:
        assert cli.main([*argv, *common]) == 2
        assert message in capsys.readouterr().err
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"data": {"image_size": 64}, "train": {**TINY_TRAIN, "base_width": 8}}))
    argv = ["view", "--source", photo, "-o", str(tmp_path / "e.mp4"), "--checkpoint", str(setup["ckpt"]),
            "--params", str(other)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {setup['ckpt']} does not match {other}" in err
    assert "train.base_width: checkpoint 4, params 8" in err
    assert not list(tmp_path.glob("*.mp4"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_device_is_refused(setup, tmp_path, capsys):
    argv = ["view", "--source", str(setup["photos"]["002"]), "-o", str(tmp_path / "v.mp4")]
    assert cli.main([*argv, "--device", "cuda", *setup["common"]]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_imitate_on_cuda(setup, tmp_path):
    out = tmp_path / "cuda.mp4"
    assert cli.main(["imitate", "--source", str(setup["photos"]["002"]), "--driving", str(setup["driving"]),
                     "--device", "cuda", "-o", str(out), *setup["common"]]) == 0
    assert _video(out) == (DRIVING_FRAMES, (SIZE, SIZE))


# -- the synthesis itself ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth(setup):
    return Synthesizer(setup["ckpt"], BodyModel.from_file(setup["caches"].body))


def _pair(setup, synth):
    caches = setup["caches"]
    data = PairDataset(caches.frames, caches.maps, caches.smpl, caches.body, PairOptions(SIZE, split="val"))
    rows = data.sources[0]
    item = data.pair(data.videos[0], int(rows[0]), int(rows[-1]))
    return Batch.from_items(torch.utils.data.default_collate([item]), torch.device("cpu"))


def test_one_source_synthesis_is_the_generators_forward(setup, synth):
    batch = _pair(setup, synth)
    from lwgan.apps.synthesis import Source

    source = Source(batch.src_img, batch.src_cond, None)
    with torch.no_grad():
        ours = synth.render([source], [synth.encode(source)], [batch.flow], batch.tgt_cond,
                            synth.inpaint(source))
        forward = generate(synth.generator, batch, synth.bg_kernel).tgt
    torch.testing.assert_close(ours, forward)


def test_auto_background_is_the_fill_for_a_synthetic_set_model_on_a_photo(setup, synth, tmp_path):
    """A checkpoint records what it was trained on; "auto" (the default) puts the background stream's
    classical base where the person stood when a model trained on the synthetic set meets a user's photo,
    and keeps the learned stream for a model trained on footage, for a checkpoint that does not say, or
    when asked for."""
    state = read_checkpoint(setup["ckpt"])
    assert state["config"]["trained_on"] == "synthetic"
    assert synth.background == "fill" and synth.generator.background == "fill"
    assert Synthesizer(setup["ckpt"], synth.body, background="learned").background == "learned"
    for label, trained_on in (("footage", "footage"), ("old", None)):
        changed = {**state, "config": {k: v for k, v in state["config"].items() if k != "trained_on"}}
        if trained_on:
            changed["config"]["trained_on"] = trained_on
        torch.save(changed, tmp_path / f"{label}.pt")
        assert Synthesizer(tmp_path / f"{label}.pt", synth.body).background == "learned"
        assert Synthesizer(tmp_path / f"{label}.pt", synth.body, background="fill").background == "fill"
    # the two differ only where the person stood: the known background is the source's either way
    batch = _pair(setup, synth)
    learned = Synthesizer(setup["ckpt"], synth.body, background="learned")
    with torch.no_grad():
        known = known_background(batch.src_cond, synth.bg_kernel, batch.src_person)
        fill_bg = synth.generator.inpaint(batch.src_img, known)
        learned_bg = learned.generator.inpaint(batch.src_img, known)
    torch.testing.assert_close(fill_bg * known, learned_bg * known)
    assert not torch.allclose(fill_bg * (1 - known), learned_bg * (1 - known))
    with pytest.raises(ValueError, match="background is 'learned'"):
        personalize(synth, [], steps=1, background=True)


def test_transfer_takes_the_head_from_the_reference_only(setup, synth):
    body = synth.body
    pose = np.zeros((1, 3 * body.num_joints), np.float32)
    pose[0, 0] = np.pi  # upright, facing the camera
    cam = np.array([[0.8, 0.0, 0.0]], np.float32)
    verts = synth.vertices(np.zeros(body.num_betas, np.float32), pose, cam)
    frame = np.zeros((synth.side, synth.side, 3), np.uint8)
    source = synth.source(frame, verts)
    target = source.record
    head = synth.head_faces
    whole = synth.flow(target, source)
    t_clothes, t_head = synth.split([whole, whole], target, [~head, head])
    both = flow_valid(t_clothes) & flow_valid(t_head)
    assert flow_valid(t_head).any() and flow_valid(t_clothes).any() and not both.any()
    # Together they cover exactly the body that the whole flow covers, and the head pixels are the head's.
    assert torch.equal(flow_valid(t_clothes) | flow_valid(t_head), flow_valid(whole))
    face = target.face_index.long()
    share = F.adaptive_avg_pool2d((head[face.clamp(min=0)] & (face >= 0)).float()[:, None], SIZE)[:, 0]
    assert flow_valid(t_head)[flow_valid(whole) & (share > 0.5)].all()
    assert not flow_valid(t_head)[share == 0].any()


def test_the_background_stream_leaves_out_the_whole_person_the_detector_masked(synth):
    """What of the person the mesh does not cover (here a green block on the head, like hair) stays in
    the inpainted background as a ghost unless the source's person mask takes it out of the known
    background: then the hole is filled from the grey around it."""
    body = synth.body
    pose = np.zeros((1, 3 * body.num_joints), np.float32)
    pose[0, 0] = np.pi  # upright, facing the camera
    cam = np.array([[0.7, 0.0, 0.1]], np.float32)
    verts = synth.vertices(np.zeros(body.num_betas, np.float32), pose, cam)
    on_body = synth.records(verts).face_index[0].numpy() >= 0  # (side, side)
    rows, cols = np.nonzero(on_body)
    top, centre, side = rows.min(), int(cols.mean()), synth.side
    block = np.zeros_like(on_body)
    block[max(0, top - side // 8):top + side // 32, centre - side // 16:centre + side // 16] = True
    frame = np.full((side, side, 3), 90, np.uint8)
    frame[on_body] = (200, 60, 60)
    frame[block] = (0, 255, 0)
    small = F.adaptive_avg_pool2d(torch.from_numpy(block & ~on_body).float()[None, None], SIZE)[0, 0] > 0.99
    assert small.sum() >= 4  # G pixels that are all green block and no mesh

    def greenness(mask):
        with torch.no_grad():
            bg = synth.inpaint(synth.source(frame, verts, mask))[0]  # (3, S, S) in [-1, 1]
        return float((bg[1] - bg[0])[small].mean()), float((bg - (90 / 127.5 - 1)).abs()[:, small].mean())

    ghost, _ = greenness(None)
    green, off_grey = greenness(on_body | block)
    assert ghost > 1.0  # the mesh alone: the block is known background, kept
    assert green < 0.2 and off_grey < 0.2, (green, off_grey)


def test_camera_strategies():
    src = np.array([0.9, 0.1, -0.2], np.float32)
    drv = np.array([[0.5, 0.0, 0.0], [0.6, 0.3, 0.1]], np.float32)
    np.testing.assert_allclose(tasks.drive_cameras(src, drv, "driving"), drv)
    np.testing.assert_allclose(tasks.drive_cameras(src, drv, "source"), [src, src])
    np.testing.assert_allclose(tasks.drive_cameras(src, drv, "smooth"), [src, [0.9, 0.4, -0.1]], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown camera strategy 'x'"):
        tasks.drive_cameras(src, drv, "x")


def test_turn_is_a_rotation_about_the_pivot():
    verts = torch.tensor([[[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]]])
    pivot = torch.tensor([0.5, 0.0, 1.0])
    turned = tasks.turn(verts, pivot, np.array([0.0, 180.0, 360.0]))
    torch.testing.assert_close(turned[0], verts[0])
    torch.testing.assert_close(turned[2], verts[0], atol=1e-5, rtol=0)
    x, y, z = verts[0].unbind(-1)
    half_turn = torch.stack((2 * pivot[0] - x, y, 2 * pivot[2] - z), dim=-1)
    torch.testing.assert_close(turned[1], half_turn, atol=1e-5, rtol=0)


def test_the_mirrored_pair_is_exact_and_personalisation_fits_it(setup, synth, tmp_path):
    caches = setup["caches"]
    smpl, frames = SmplCache(caches.smpl), FramesCache(caches.frames)
    video = smpl.videos[0]
    fit = smpl.params(video)
    image = frames.frame(video, int(fit["frame"][0]))
    big = cv2.resize(image, (synth.side, synth.side), interpolation=cv2.INTER_LINEAR)
    source = synth.source(big, synth.vertices(fit["betas"], fit["pose"][:1], fit["cam"][:1]))
    batch = self_pairs(synth, source)
    body = 1.0 - batch.tgt_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
    valid = flow_valid(batch.flow)[:, None].float()
    error = masked_l1(warp(batch.src_img, batch.flow), batch.tgt_img, body * valid)
    assert error.max().item() < 0.05  # both the identity and the mirrored pair re-create their target
    assert torch.equal(mirrored(mirrored(source.record)).face_index, source.record.face_index)
    assert (batch.flow[1][..., 0] != OUTSIDE).any()
    tuned = Synthesizer(setup["ckpt"], synth.body)
    before = [p.detach().clone() for p in tuned.generator.parameters()]
    tuned_run = personalize(tuned, [source], steps=8, lr=1e-3)
    history = tuned_run.history
    # the checkpoint's own networks: the fetched VGG16 and dlib face ResNet, named with their file's hash
    assert "data/weights/vgg16.pth (sha256" in tuned_run.feature_nets["vgg16"]
    assert "SUBSTITUTE" not in tuned_run.feature_nets["dlib"]
    assert len(history["L_G"]) == 8 and history["L_G"][-1] < history["L_G"][0]
    names = [name for name, _ in tuned.generator.named_parameters()]
    changed = {n for n, a, b in zip(names, before, tuned.generator.parameters(), strict=True)
               if not torch.equal(a, b)}
    # the person's streams are tuned, the background stream is not (by default), and stays trainable
    assert any(n.startswith("tsf.") for n in changed) and not any(n.startswith("bg.") for n in changed)
    assert all(p.requires_grad for p in tuned.generator.parameters())
    assert not tuned.generator.training
    also_bg = Synthesizer(setup["ckpt"], synth.body, background="learned")
    personalize(also_bg, [source], steps=2, lr=1e-3, background=True)
    assert any(not torch.equal(a, b) for n, a, b in zip(names, before, also_bg.generator.parameters(),
                                                        strict=True) if n.startswith("bg."))
