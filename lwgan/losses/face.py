"""Face-identity loss on head crops (the original's FaceLoss with SphereFace-20a).

    L_face = sum_l mean |psi_l(crop(I_t_fake, box)) - psi_l(crop(I_t, box))|     (lambda_face 5)

psi = SphereFace-20a's four stage outputs and its fc5 embedding, equally weighted, as in the original.
The crop is a bilinear resampling (`grid_sample`, align_corners=False, zeros outside the image) of the
NDC head box onto a 112 x 96 grid: a differentiable `roi_align` without torchvision. The box is stretched
to the crop's aspect ratio, as the original's crop-and-resize does; the original derives the box from
projected head joints, lwgan from the head part's projected vertices
(`lwgan.render.correspond.head_box`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lwgan.geometry import ALIGN_CORNERS
from lwgan.losses.terms import LossTerm, detached, wide
from lwgan.nets.face import CROP_SIZE

FACE_FEATURES = ("stage1", "stage2", "stage3", "stage4", "fc5")


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int] = CROP_SIZE) -> torch.Tensor:
    """Bilinear crops of NDC boxes.

    images: (B, C, H, W).  boxes: (B, 4) NDC (x0, y0, x1, y1), x0 < x1, y0 < y1 (geometry.py).
    size: (h, w) of the crops. Returns (B, C, h, w): output pixel centres are spread evenly over the box
    exactly as input pixel centres are over the image, so a box of (-1, -1, 1, 1) at the input's size
    returns the input unchanged. Differentiable w.r.t. the images.
    """
    boxes = boxes.to(images.dtype)
    x0, y0, x1, y1 = boxes.unbind(dim=1)  # (B,) each
    zeros = torch.zeros_like(x0)
    theta = torch.stack((
        torch.stack(((x1 - x0) / 2, zeros, (x0 + x1) / 2), dim=1),
        torch.stack((zeros, (y1 - y0) / 2, (y0 + y1) / 2), dim=1),
    ), dim=1)  # (B, 2, 3): NDC of the crop -> NDC of the image
    grid = F.affine_grid(theta, [images.shape[0], images.shape[1], *size], align_corners=ALIGN_CORNERS)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=ALIGN_CORNERS)


class FaceLoss(nn.Module):
    """net: frozen SphereFace-20a (`lwgan.nets.load_feature_net("sphere20a", ...)`).

    forward(fake (B, 3, H, W), real (B, 3, H, W), boxes (B, 4) NDC head boxes of the target) -> LossTerm
    with stats per feature level (FACE_FEATURES).
    """

    def __init__(self, net: nn.Module, size: tuple[int, int] = CROP_SIZE) -> None:
        super().__init__()
        self.net = net
        self.size = size

    def forward(self, fake: torch.Tensor, real: torch.Tensor, boxes: torch.Tensor) -> LossTerm:
        fake_features = self.net(crop_boxes(fake, boxes, self.size))
        with torch.no_grad():
            real_features = self.net(crop_boxes(real, boxes, self.size))
        total = torch.zeros((), device=fake.device)
        stats = {}
        for name, f, r in zip(FACE_FEATURES, fake_features, real_features, strict=True):
            stats[name] = (wide(f) - wide(r)).abs().mean()
            total = total + stats[name]
        return LossTerm(total, detached(**stats))
