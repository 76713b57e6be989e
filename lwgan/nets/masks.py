"""Binary mask morphology for the generator's inputs and the attention targets, and the box mean over the
same clipped windows.

Masks are float tensors (B, 1, H, W) with 1 = inside. The conditioning map C (lwgan.correspond.maps)
marks the background in its channel `BACKGROUND_CHANNEL` (1 = background, 0 = body).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BACKGROUND_CHANNEL = 3
# The original erodes the rendered background by 3 px for the SID stream's foreground and the attention
# target, and by 15 px for the background stream's input mask.
FOREGROUND_ERODE = 3
BACKGROUND_ERODE = 15
REFERENCE_SIZE = 256  # the resolution the original's mask sizes are given for


def scaled_kernel(size_at_256: int, image_size: int) -> int:
    """An odd morphology kernel that covers the same share of the image as `size_at_256` px at 256^2."""
    k = max(1, round(size_at_256 * image_size / REFERENCE_SIZE))
    return k if k % 2 else k + 1


def resize_cond(cond: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 4, H, W) conditioning maps -> (B, 4, h, w): background in {0, 1} (body where at least half of
    the footprint is body), surface code averaged over the footprint's body part, 0 on background."""
    if tuple(cond.shape[2:]) == tuple(size):
        return cond
    small = F.interpolate(cond, size=size, mode="area")  # (B, 4, h, w)
    body = 1.0 - small[:, BACKGROUND_CHANNEL : BACKGROUND_CHANNEL + 1]  # (B, 1, h, w) body fraction
    keep = body >= 0.5
    code = torch.where(keep, small[:, :BACKGROUND_CHANNEL] / body.clamp(min=1e-6), torch.zeros(()))
    return torch.cat((code, (~keep).float()), dim=1)


def _check_kernel(size: int) -> None:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"morphology kernel size must be odd and >= 1, got {size}")


def dilate(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Max over a size x size window (odd size): (B, C, H, W) -> (B, C, H, W). The window is clipped at
    the image border (outside pixels are ignored, not read as 0 or 1)."""
    _check_kernel(size)
    if size == 1:
        return mask
    return F.max_pool2d(mask, size, stride=1, padding=size // 2)


def box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a size x size window (odd size): (B, C, H, W) -> (B, C, H, W), the window clipped at the
    image border as in `dilate` (a border pixel averages only the pixels inside the image)."""
    _check_kernel(size)
    if size == 1:
        return x
    return F.avg_pool2d(x, size, stride=1, padding=size // 2, count_include_pad=False)


def erode(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Min over a size x size window (odd size): (B, C, H, W) -> (B, C, H, W), the window clipped at the
    image border as in `dilate`, so a background that touches the border is not eaten from there."""
    return -dilate(-mask, size)


def background(cond: torch.Tensor, size: int) -> torch.Tensor:
    """The rendered background of a conditioning map (B, 4, H, W), eroded by `size`: (B, 1, H, W) in
    {0, 1}. size=15 gives the original's background-stream mask, size=3 its attention target."""
    return erode(cond[:, BACKGROUND_CHANNEL : BACKGROUND_CHANNEL + 1], size)


def known_background(cond: torch.Tensor, size: int, person: torch.Tensor | None = None) -> torch.Tensor:
    """What the background stream may read of a source (B, 1, H, W) in {0, 1}: its rendered background
    eroded by `size` (`background`) and, with the detector's person mask `person` (B, 1, H, W) in {0, 1},
    less that mask grown by the same size, so that what the mesh misses of the person is inpainted too."""
    known = background(cond, size)
    return known if person is None else known * (1.0 - dilate(person.to(known.dtype), size))


def foreground(cond: torch.Tensor, size: int = FOREGROUND_ERODE) -> torch.Tensor:
    """1 - background(cond, size): the body grown by size // 2 pixels, (B, 1, H, W) in {0, 1}."""
    return 1.0 - background(cond, size)
