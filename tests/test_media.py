"""The user's inputs of `lwgan imitate / transfer / view`: photos, video files and frame folders, read
lazily and anew on every pass, with errors that name the file; and the videos `lwgan.io.write_video`
writes: H.264 in a streamable MP4 (checked by reading the MP4 boxes by hand) or Motion JPEG in an AVI,
decoded back by OpenCV frame for frame."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from lwgan.apps import media
from lwgan.io import write_video


def _frames(count: int, height: int = 24, width: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _smooth_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    """Waves that move from frame to frame: content a lossy codec keeps close, and no two frames alike."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return [np.stack([128 + 100 * np.sin((x + 2 * t) / 7), 128 + 100 * np.cos((y - t) / 5),
                      128 + 100 * np.sin((x + y) / 9 + t / 3)], axis=-1).round().astype(np.uint8)
            for t in range(count)]


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """The ISO base media (MP4) boxes in data[start:end] as (type, payload start, payload end)."""
    end = len(data) if end is None else end
    found = []
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        header = 8
        if size == 1:  # a 64-bit size follows the type
            (size,) = struct.unpack(">Q", data[start + 8:start + 16])
            header = 16
        elif size == 0:  # the box runs to the end
            size = end - start
        assert size >= header, f"broken box {kind!r} at {start}"
        found.append((kind.decode("latin-1"), start + header, start + size))
        start += size
    return found


def _child(data: bytes, box: tuple[str, int, int], *path: str) -> tuple[str, int, int]:
    for name in path:
        kinds = {b[0]: b for b in _boxes(data, box[1], box[2])}
        assert name in kinds, f"no {name} box in {box[0]} (has {sorted(kinds)})"
        box = kinds[name]
    return box


def _mp4_video_track(path: Path) -> dict:
    """What the container says of its video track, read from the boxes by hand (ISO/IEC 14496-12 and -15),
    independently of the library that wrote it."""
    data = path.read_bytes()
    top = _boxes(data)
    order = [kind for kind, _, _ in top]
    moov = top[order.index("moov")]
    tracks = [b for b in _boxes(data, moov[1], moov[2]) if b[0] == "trak"]
    video = [t for t in tracks if data[_child(data, t, "mdia", "hdlr")[1] + 8:][:4] == b"vide"]
    assert len(video) == 1, f"{path} has {len(video)} video tracks"
    mdia = _child(data, video[0], "mdia")
    mdhd = _child(data, mdia, "mdhd")[1]
    version = data[mdhd]
    timescale = struct.unpack(">I", data[mdhd + (20 if version == 1 else 12):][:4])[0]
    stbl = _child(data, mdia, "minf", "stbl")
    _, stsd, _ = _child(data, stbl, "stsd")  # version/flags, entry count, then the sample entries
    (entries,) = struct.unpack(">I", data[stsd + 4:stsd + 8])
    entry = _boxes(data, stsd + 8)[0]
    # A visual sample entry: 6 reserved, data reference index, 16 bytes predefined, then width and height.
    width, height = struct.unpack(">HH", data[entry[1] + 24:entry[1] + 28])
    children = [kind for kind, _, _ in _boxes(data, entry[1] + 78, entry[2])]  # after the 78-byte header
    _, stts, _ = _child(data, stbl, "stts")  # version/flags, entry count, (sample count, sample delta)...
    (runs,) = struct.unpack(">I", data[stts + 4:stts + 8])
    durations = [struct.unpack(">II", data[stts + 8 + 8 * i:stts + 16 + 8 * i]) for i in range(runs)]
    return {"top_level": order, "sample_entries": entries, "codec": entry[0], "codec_boxes": children,
            "width": width, "height": height, "frames": sum(count for count, _ in durations),
            "fps": sorted({timescale / delta for _, delta in durations})}


def _read_back(path: Path) -> tuple[list[np.ndarray], float]:
    """Every frame of `path` decoded by OpenCV, as (H, W, 3) RGB, and its frame rate."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"OpenCV cannot open {path}"
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


# Mean absolute error (0..255) allowed per frame after the lossy round trip; on these frames 4:2:0 chroma
# subsampling alone costs about 4.4 and the encoder about 1 more.
LOSSY_TOLERANCE = 8.0


def _assert_same_frames(read: list[np.ndarray], written: list[np.ndarray]) -> None:
    """Each frame read back is within LOSSY_TOLERANCE of the one written at its place and closer to it
    than to any other written frame (so none is dropped, repeated or out of order)."""
    assert len(read) == len(written)
    height, width = written[0].shape[:2]
    for i, frame in enumerate(read):
        errors = [np.abs(frame[:height, :width].astype(np.int16) - w).mean() for w in written]
        assert errors[i] < LOSSY_TOLERANCE, f"frame {i} is off by {errors[i]:.2f} on average"
        assert int(np.argmin(errors)) == i, f"frame {i} looks most like written frame {np.argmin(errors)}"


def test_an_mp4_is_streamable_h264_that_reads_back_frame_for_frame(tmp_path):
    frames = _smooth_frames(12, 48, 64)
    path = write_video(tmp_path / "v.mp4", frames, 12.5)
    track = _mp4_video_track(path)
    # H.264, with its decoder configuration (SPS and PPS) in the sample entry's avcC box
    assert track["codec"] == "avc1" and "avcC" in track["codec_boxes"] and track["sample_entries"] == 1
    top = track["top_level"]
    assert top.index("moov") < top.index("mdat")  # faststart: a browser can play before the whole file
    assert (track["width"], track["height"], track["frames"]) == (64, 48, 12)
    assert track["fps"] == [12.5]
    read, fps = _read_back(path)
    assert fps == pytest.approx(12.5)
    assert all(frame.shape == (48, 64, 3) for frame in read)
    _assert_same_frames(read, frames)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # the temporary file was renamed
    again = write_video(tmp_path / "again.mp4", frames, 12.5)
    assert again.read_bytes() == path.read_bytes()  # a cached output that DVC sees unchanged


def test_an_odd_sized_mp4_is_padded_by_a_copy_of_its_last_row_and_column(tmp_path):
    frames = _smooth_frames(5, 25, 33)
    path = write_video(tmp_path / "odd.mp4", frames, 30000 / 1001)
    track = _mp4_video_track(path)
    assert (track["codec"], track["width"], track["height"], track["frames"]) == ("avc1", 34, 26, 5)
    assert track["fps"] == [pytest.approx(30000 / 1001)]  # NTSC rate kept exact
    read, fps = _read_back(path)
    assert fps == pytest.approx(30000 / 1001)
    assert all(frame.shape == (26, 34, 3) for frame in read)
    _assert_same_frames(read, frames)
    for frame, written in zip(read, frames, strict=True):
        assert np.abs(frame[25, :33].astype(np.int16) - written[24]).mean() < LOSSY_TOLERANCE
        assert np.abs(frame[:25, 33].astype(np.int16) - written[:, 32]).mean() < LOSSY_TOLERANCE


def test_an_avi_is_motion_jpeg_at_the_frames_own_size(tmp_path):
    frames = _smooth_frames(4, 25, 33)
    path = write_video(tmp_path / "v.avi", frames, 10.0)
    capture = cv2.VideoCapture(str(path))
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1")
    capture.release()
    assert fourcc.upper() == "MJPG"
    read, fps = _read_back(path)
    assert fps == pytest.approx(10.0)
    assert all(frame.shape == (25, 33, 3) for frame in read)
    _assert_same_frames(read, frames)


def test_bad_videos_are_refused_and_leave_no_file(tmp_path, monkeypatch):
    frames = _smooth_frames(3, 16, 16)
    with pytest.raises(ValueError, match=r"frame 2 of .*v.mp4 is \(8, 8, 3\) uint8"):
        write_video(tmp_path / "v.mp4", [*frames[:2], frames[2][:8, :8]], 10.0)
    with pytest.raises(ValueError, match="fps of .*v.mp4 must be a number"):
        write_video(tmp_path / "v.mp4", frames, 0.0)
    import av

    def failing_open(*args, **kwargs):
        raise av.error.FFmpegError(28, "No space left on device")

    monkeypatch.setattr(av, "open", failing_open)
    with pytest.raises(OSError, match=r"could not write the video .*v.mp4: .*No space left on device"):
        write_video(tmp_path / "v.mp4", frames, 10.0)
    assert list(tmp_path.iterdir()) == []


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
