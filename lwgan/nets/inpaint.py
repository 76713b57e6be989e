"""Pull-push hole filling (Gortler et al., "The Lumigraph", 1996): classical inpainting in a few pooling
and upsampling passes, with no learned weights, on any device, for the generator's residual heads.

Pull: an image pyramid of premultiplied colours S_l = avgpool(S_{l-1}) and coverage W_l = avgpool(W_{l-1})
(S_0 = I * M, W_0 = M), halving the size down to 1 x 1. Push, coarsest first: the estimate at level l is
S_l / W_l blended with the upsampled (bilinear) estimate of level l + 1 by the coverage W_l itself,

    C_l = W_l * S_l / W_l + (1 - W_l) * up(C_{l+1})      (S_l / W_l read as 0 where W_l = 0)

so a known pixel (W_0 = 1) keeps its value, a hole takes the smooth average of the known pixels around
it (the larger the hole, the coarser the level it is read from), and every filled value is a convex
combination of known ones. An image with no known pixel comes back as zeros.

Harmonic fill (`fill(..., "harmonic")`, the residual background head's default base): the same push, with
`HARMONIC_SWEEPS` Jacobi sweeps after each level's step, each giving every pixel's unknown share the mean
of its four neighbours,

    C_l <- W_l * S_l / W_l + (1 - W_l) * mean4(C_l)                   (the image border replicated)

At full resolution the known pixels stay fixed and a hole relaxes toward the discrete harmonic
interpolant of the known pixels around it (Laplace's equation with them as boundary values): a membrane
that continues the colours at the hole's rim into it without the steps and blocks that pull-push's
coarse averages leave there; starting each level from the coarser one's answer makes a few sweeps per
level enough (a multigrid pass). A hole in a linear colour ramp is filled with the ramp. Under the naive
reference's warp, on the 76 self-imitation pairs of each of the default set's development people 003 and
007, the harmonic fill scores an SSIM of 0.879 / 0.902 (PSNR 27.45 / 26.35), pull-push 0.870 / 0.887
(27.14 / 26.13) and OpenCV's Telea 0.879 / 0.902 (27.44 / 26.26). Cost: 4.9 ms for a batch of four 64²
images on 2 CPU cores (pull-push 0.5), 24 ms at 256² (3.8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FILLS = ("harmonic", "pull_push")
HARMONIC_SWEEPS = 16


def fill(image: torch.Tensor, known: torch.Tensor, method: str) -> torch.Tensor:
    """`pull_push` (method "pull_push") or the harmonic fill ("harmonic"): module docstring."""
    if method not in FILLS:
        raise ValueError(f"fill method {method!r} is not one of {FILLS}")
    return pull_push(image, known, HARMONIC_SWEEPS if method == "harmonic" else 0)


def _mean4(x: torch.Tensor) -> torch.Tensor:
    """Mean of each pixel's four neighbours, (B, C, H, W), the border replicated (slices, not a depthwise
    convolution: 5x faster on a CPU, and no op that autocast would run in bfloat16)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return 0.25 * (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:])


def pull_push(image: torch.Tensor, known: torch.Tensor, sweeps: int = 0) -> torch.Tensor:
    """Fill the unknown pixels of `image` (B, C, H, W) where `known` (B, 1, H, W) in [0, 1] is 0.

    Returns (B, C, H, W): `image` where known == 1, the pull-push fill (module docstring) elsewhere; with
    `sweeps` > 0, that many Jacobi sweeps after each level (the harmonic fill).
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
        free = 1.0 - w
        estimate = torch.addcmul(s, free, coarse)  # = w * (s / w) + (1 - w) * coarse
        for _ in range(sweeps):
            estimate = torch.addcmul(s, free, _mean4(estimate))
    return estimate
