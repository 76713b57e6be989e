"""Full-reference image metrics of self-imitation: SSIM, PSNR and masked L1.

Images are float tensors (B, 3, H, W) in [-1, 1] (lwgan's convention); every metric maps them to [0, 1]
first, so numbers are comparable with the literature's 8-bit figures (data range 1).

SSIM follows Wang et al. 2004 as the original LWGAN's evaluation (scikit-image's `structural_similarity`
with `gaussian_weights=True`): an 11 x 11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, the sample
covariance's N / (N - 1) correction, computed per channel on the "valid" part of the image (no padding)
and averaged over channels and pixels. Returns one value per image.

`valid` (B, 1, H, W), where given, marks the pixels that show the video: a crop that reached past the
source frame is padded with a constant, and those pixels are left out of every metric (SSIM: windows
centred on them; PSNR: their squared error; L1: their difference). None, or all ones, is the plain metric.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def _unit(images: torch.Tensor) -> torch.Tensor:
    return ((images.double() + 1.0) * 0.5).clamp(0.0, 1.0)


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """(size, size) float64 Gaussian weights summing to 1."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def partial(valid: torch.Tensor | None) -> bool:
    """Whether a valid mask leaves some pixel out (None, or all ones, leaves none)."""
    return valid is not None and not bool(valid.all())


def ssim(fake: torch.Tensor, real: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """SSIM of (B, C, H, W) images in [-1, 1] (module docstring): (B,) float64 in [-1, 1]."""
    _check(fake, real)
    x, y = _unit(fake), _unit(real)
    channels = x.shape[1]
    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW} x {WINDOW} pixels, got "
                         f"{tuple(x.shape[-2:])}")
    w = gaussian_window().to(x.device)[None, None].expand(channels, 1, -1, -1)  # (C, 1, 11, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=channels)  # (B, C, H - 10, W - 10)

    n = WINDOW * WINDOW
    correction = n / (n - 1)  # sample covariance, as scikit-image
    mu_x, mu_y = blur(x), blur(y)
    var_x = (blur(x * x) - mu_x**2) * correction
    var_y = (blur(y * y) - mu_y**2) * correction
    cov = (blur(x * y) - mu_x * mu_y) * correction
    c1, c2 = K1**2, K2**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    if not partial(valid):
        return s.mean(dim=(1, 2, 3))
    half = WINDOW // 2
    m = valid.double()[..., half:-half, half:-half]  # (B, 1, H - 10, W - 10): window centres
    return (s * m).sum(dim=(1, 2, 3)) / (m.sum(dim=(1, 2, 3)) * channels)


def psnr(fake: torch.Tensor, real: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """PSNR in dB of (B, C, H, W) images in [-1, 1] at data range 1: (B,) float64 (inf for equal images)."""
    _check(fake, real)
    squared = (_unit(fake) - _unit(real)).square()
    if partial(valid):
        m = valid.double()
        mse = (squared * m).sum(dim=(1, 2, 3)) / (m.sum(dim=(1, 2, 3)) * squared.shape[1])
    else:
        mse = squared.mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


def masked_l1(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |fake - real| in [0, 1] units over the pixels where mask (B, 1, H, W) is 1 (the body) and
    `valid`: (B,) float64; NaN for an empty mask."""
    _check(fake, real)
    diff = (_unit(fake) - _unit(real)).abs().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    m = mask.double() * valid.double() if partial(valid) else mask.double()
    return (diff * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3))
