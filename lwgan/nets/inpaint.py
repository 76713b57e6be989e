"""Pull-push hole filling (Gortler et al., "The Lumigraph", 1996): classical inpainting in a few pooling
and upsampling passes, with no learned weights, on any device, for the generator's residual heads.

Pull: an image pyramid of premultiplied colours S_l = avgpool(S_{l-1}) and coverage W_l = avgpool(W_{l-1})
(S_0 = I * M, W_0 = M), halving the size down to 1 x 1. Push, coarsest first: the estimate at level l is
S_l / W_l blended with the upsampled (bilinear) estimate of level l + 1 by the coverage W_l itself,

    C_l = W_l * S_l / W_l + (1 - W_l) * up(C_{l+1})      (S_l / W_l read as 0 where W_l = 0)

so a known pixel (W_0 = 1) keeps its value, a hole takes the smooth average of the known pixels around
it (the larger the hole, the coarser the level it is read from), and every filled value is a convex
combination of known ones. An image with no known pixel comes back as zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pull_push(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill the unknown pixels of `image` (B, C, H, W) where `known` (B, 1, H, W) in [0, 1] is 0.

    Returns (B, C, H, W): `image` where known == 1, the pull-push fill (module docstring) elsewhere.
    """
    if known.shape[0] != image.shape[0] or known.shape[1] != 1 or known.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"known must be (B, 1, H, W) for an image {tuple(image.shape)}, got "
                         f"{tuple(known.shape)}")
    known = known.to(image.dtype)
    sums, weights = [image * known], [known]
    while max(sums[-1].shape[-2:]) > 1:
        sums.append(F.avg_pool2d(sums[-1], 2, ceil_mode=True))
        weights.append(F.avg_pool2d(weights[-1], 2, ceil_mode=True))
    estimate = sums[-1] / weights[-1].clamp_min(1e-8)  # (B, C, 1, 1)
    for s, w in zip(reversed(sums[:-1]), reversed(weights[:-1]), strict=True):
        coarse = F.interpolate(estimate, size=s.shape[-2:], mode="bilinear", align_corners=False)
        estimate = s + (1.0 - w) * coarse  # = w * (s / w) + (1 - w) * coarse
    return estimate
