"""A crop that reaches past the source frame is padded with a constant; the padded pixels are recorded as
invalid and left out of the training losses and the evaluation metrics. Checked against OpenCV's own
padding and resizing, scikit-image's SSIM map, plain NumPy and a toy video with the padding in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _toy import ToyVideo, write_video_file
from skimage.metrics import structural_similarity

from lwgan.data.cache import FramesCache
from lwgan.data.crop import CropBox, apply_crop, valid_mask
from lwgan.data.prepare import PrepareOptions, prepare
from lwgan.metrics.image import masked_l1, psnr, ssim
from lwgan.train.objective import keep_padding

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "data" / "weights"


@pytest.mark.parametrize("box", [(10, 5, 30), (-12, 0, 40), (50, -20, 40), (-30, -40, 120), (0, 0, 48)])
def test_the_valid_mask_is_where_the_resized_crop_holds_only_the_source(box):
    """A flat grey source padded with black: a valid pixel is exactly the grey (its whole footprint was
    source), an invalid one is darker (padding went into it)."""
    source = np.full((48, 64, 3), 200, np.uint8)
    size = 32
    crop = apply_crop(source, CropBox(*box), size, pad="constant")
    valid = valid_mask(box, source.shape[:2], size)
    assert (crop[valid] == 200).all()
    assert (crop[~valid] < 200).all()


def test_prepare_records_the_padding_of_a_crop_taller_than_the_frame(tmp_path):
    """A person filling the height of a wide, low video: the square around them is taller than the frame,
    so rows above and below are padding; the cache's valid masks mark exactly the black rows."""
    clip = ToyVideo(frames=6, height=40, width=160, seed=5, blob_size=(0.15, 0.9), travel=(0.45, 0.55))
    write_video_file(clip, tmp_path / "videos" / "low.mp4")
    prepare(PrepareOptions(source="folder", root=tmp_path / "videos", image_size=48, crop="fixed",
                           person_box="motion", min_person_share=0.1, codec="lzf"), tmp_path / "out")
    cache = FramesCache(tmp_path / "out" / "frames.h5")
    (video,) = cache.videos
    masks = cache.valid_masks(video, range(cache.num_frames(video)))
    assert masks is not None and masks.shape == (6, 48, 48)
    assert (~masks).any() and masks.any()
    frames = cache.frames(video, range(6)).astype(np.float64)  # (6, 48, 48, 3)
    # the constant padding, losslessly cached; the invalid pixels that are not pure black are the row
    # mixed with the scene by the resize, darker than the scene
    assert (frames[~masks].max(axis=-1) == 0).mean() > 0.8
    assert frames[~masks].mean() < 0.25 * frames[masks].mean()
    assert frames[masks].mean() > 40 and (frames[masks].max(axis=-1) > 0).mean() > 0.99  # the toy's scene
    padded_rows = ~masks.any(axis=2)  # (6, 48): rows that are all padding
    assert padded_rows[:, 0].all() and padded_rows[:, -1].all()


def _images(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, (2, 3, 40, 48))
    fake = np.clip(real + rng.normal(0, 0.3, real.shape), -1, 1)
    valid = np.ones((2, 1, 40, 48))
    valid[0, :, :, :14] = 0  # padding on the left of the first image
    valid[1, :, 30:] = 0  # and at the bottom of the second
    return torch.from_numpy(fake), torch.from_numpy(real), torch.from_numpy(valid)


def test_masked_ssim_is_scikit_images_ssim_map_averaged_over_the_valid_window_centres():
    fake, real, valid = _images(0)
    ours = ssim(fake, real, valid).numpy()
    for b in range(2):
        x = (fake[b].numpy().transpose(1, 2, 0) + 1) / 2
        y = (real[b].numpy().transpose(1, 2, 0) + 1) / 2
        _, full = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=True,
                                        data_range=1.0, channel_axis=2, full=True)
        centres = valid[b, 0].numpy()[5:-5, 5:-5] > 0
        assert ours[b] == pytest.approx(full[5:-5, 5:-5][centres].mean(), abs=1e-6)
    assert torch.allclose(ssim(fake, real, torch.ones_like(valid)), ssim(fake, real))


def test_masked_psnr_and_l1_count_only_the_valid_pixels():
    fake, real, valid = _images(1)
    body = torch.ones_like(valid)
    body[:, :, :8] = 0
    x, y, v, m = ((fake.numpy() + 1) / 2, (real.numpy() + 1) / 2, valid.numpy() > 0, body.numpy() > 0)
    for b in range(2):
        keep = np.broadcast_to(v[b], x[b].shape)
        mse = np.mean((x[b][keep] - y[b][keep]) ** 2)
        assert psnr(fake, real, valid)[b].item() == pytest.approx(10 * np.log10(1 / mse), rel=1e-9)
        diff = np.abs(x[b] - y[b]).mean(axis=0)
        assert masked_l1(fake, real, body, valid)[b].item() == pytest.approx(diff[v[b, 0] & m[b, 0]].mean())
    # a difference only on the padding does not count
    spoilt = torch.where(valid > 0, real, -real)
    assert torch.isinf(psnr(spoilt, real, valid)).all()


def test_keep_padding_shows_the_real_frame_there_and_passes_no_gradient_through_it():
    fake, real, valid = (t.float() for t in _images(2))
    fake.requires_grad_(True)
    out = keep_padding(fake, real, valid)
    assert torch.equal(out.detach()[valid.expand_as(out) == 0], real[valid.expand_as(out) == 0])
    out.square().sum().backward()
    grad = fake.grad
    assert (grad[valid.expand_as(grad) == 0] == 0).all()
    assert torch.allclose(grad[valid.expand_as(grad) > 0], 2 * fake.detach()[valid.expand_as(grad) > 0])
    assert keep_padding(fake, real, torch.ones_like(valid)) is fake and keep_padding(fake, real, None) is fake


def test_masked_lpips_leaves_a_difference_on_the_padding_out():
    if not (WEIGHTS / "alexnet.pth").is_file():
        pytest.skip("data/weights/alexnet.pth missing: run `make weights`")
    from lwgan.metrics.lpips import load_lpips

    lpips = load_lpips("alex", WEIGHTS / "alexnet.pth", WEIGHTS / "lpips_alex.pth")
    rng = np.random.default_rng(3)
    real = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 64, 64))).float()
    valid = torch.ones(1, 1, 64, 64)
    valid[..., :24] = 0
    spoilt = torch.where(valid > 0, real, torch.from_numpy(rng.uniform(-1, 1, (1, 3, 64, 64))).float())
    with torch.no_grad():
        plain, masked = lpips(spoilt, real).item(), lpips(spoilt, real, valid).item()
        assert lpips(spoilt, real, torch.ones_like(valid)).item() == plain
    assert masked < 0.5 * plain
