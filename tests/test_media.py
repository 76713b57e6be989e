"""The user's inputs of `lwgan imitate / transfer / view`: photos, video files and frame folders, read
lazily and anew on every pass, with errors that name the file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lwgan.apps import media
from lwgan.io import write_video


def _frames(count: int, height: int = 24, width: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def test_a_photo_is_one_rgb_frame(tmp_path):
    image = _frames(1)[0]
    cv2.imwrite(str(tmp_path / "p.png"), image[..., ::-1])
    footage = media.read_image(tmp_path / "p.png")
    frames = list(footage.frames())
    assert len(frames) == 1 and np.array_equal(frames[0], image) and footage.fps == media.DEFAULT_FPS


def test_a_video_file_with_step_and_limit_is_decoded_on_every_pass(tmp_path):
    write_video(tmp_path / "v.mp4", _frames(9), 20.0)
    footage = media.read_video(tmp_path / "v.mp4", step=2, max_frames=3)
    assert [f.shape for f in footage.frames()] == [(24, 32, 3)] * 3
    assert len(list(footage.frames())) == 3  # a second pass decodes again
    assert footage.fps == pytest.approx(10.0)


def test_a_frame_folder_skips_unreadable_frames_and_refuses_mixed_sizes(tmp_path, caplog):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, frame in enumerate(_frames(4)):
        cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
    (folder / "0004.png").write_bytes(b"broken")
    assert len(list(media.read_video(folder).frames())) == 4
    assert "frame 4" in caplog.text and "skipped" in caplog.text
    cv2.imwrite(str(folder / "0005.png"), _frames(1, 40, 40)[0])
    with pytest.raises(media.InputError, match=r"frame 5 of .*clip is \(40, 40\), but its first frame is "
                                                r"\(24, 32\)"):
        list(media.read_video(folder).frames())


def test_bad_inputs_and_outputs_are_named(tmp_path):
    with pytest.raises(media.InputError, match=f"image {tmp_path / 'none.png'} does not exist"):
        media.read_image(tmp_path / "none.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(media.InputError, match="cannot read .*text.png as an image"):
        media.read_image(tmp_path / "text.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(media.InputError, match="video .*empty has no image files"):
        media.read_video(tmp_path / "empty")
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(media.InputError, match="zero.mp4 is empty"):
        media.read_video(tmp_path / "zero.mp4")
    with pytest.raises(media.InputError, match="must end in .mp4 or .avi"):
        media.check_output(tmp_path / "out.png", "video")
    with pytest.raises(media.InputError, match="must end in .png or .jpg or .jpeg"):
        media.check_output(tmp_path / "out.mp4", "image")
    assert media.check_output(tmp_path / "out.avi", "video") == tmp_path / "out.avi"
