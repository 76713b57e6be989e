"""Face-identity loss on head crops (the original's FaceLoss), with dlib's face ResNet by default.

    L_face = sum_l mean |psi_l(crop(I_t_fake)) - psi_l(crop(I_t))|               (lambda_face 5)

psi = the face network's feature levels, equally weighted as in the original: dlib's face ResNet (the
outputs of its four stages and the 128-d descriptor, on 150 x 150 chips) or SphereFace-20a (four stages
and fc5, on 112 x 96 crops). Whatever the network, the crop of the fake and of the real target is the SAME
resampling (`grid_sample`, align_corners=False, zeros outside the image; a differentiable `roi_align`
without torchvision), so the loss compares like with like:

- aligned (`face_kp` given): a similarity transform from the target's face keypoints projected from the
  body model (`lwgan.correspond.maps.face_keypoints`): rotated so the eyes are level, the eye midpoint
  at `EYE_ROW` of the crop height, the crop side `CHIP_SCALE` times the head box's longer side. Where the
  eyes are not both seen from the front (profile, back view: the image distance between the eyes is below
  `FRONTAL_EYES` of that side, or the person's left eye is not on the image's right) it falls back to the
  unrotated square around the head box's centre.
- box (`face_kp` None): the NDC head box stretched to the crop's aspect ratio, as the original's
  crop-and-resize of the box around the projected head joints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lwgan.geometry import ALIGN_CORNERS
from lwgan.losses.terms import LossTerm, detached, feature_autocast, wide
from lwgan.nets.face import CROP_SIZE

FACE_FEATURES = ("stage1", "stage2", "stage3", "stage4", "fc5")  # SphereFace-20a's levels
EYE_ROW = 0.38  # the eye midpoint's height in an aligned crop (0 = top, 1 = bottom), as in dlib's chips
CHIP_SCALE = 0.9  # aligned crop side / the head box's longer side (the box includes hair and a margin)
FRONTAL_EYES = 0.15  # the eyes' image distance / crop side below which a face is not seen from the front


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


def frontal_faces(boxes: torch.Tensor, face_kp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which faces are seen from the front (B,) bool, and the aligned crop's side (B,) in NDC: boxes (B, 4)
    NDC head boxes, face_kp (B, 5, 3) NDC face keypoints (module docstring)."""
    boxes, kp = boxes.float(), face_kp.float()
    side = CHIP_SCALE * torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])  # (B,) NDC
    eyes = kp[:, 1, :2] - kp[:, 2, :2]  # the person's left eye minus the right: to the image's right
    return (eyes[:, 0] > 0) & (eyes.norm(dim=1) > FRONTAL_EYES * side), side


def aligned_crops(images: torch.Tensor, boxes: torch.Tensor, face_kp: torch.Tensor,
                  size: tuple[int, int]) -> torch.Tensor:
    """Bilinear crops aligned on the face (module docstring).

    images: (B, C, H, W), square.  boxes: (B, 4) NDC head boxes.  face_kp: (B, 5, 3) NDC face keypoints
    (nose, left eye, right eye, left ear, right ear).  size: (h, w) of the crops. Returns (B, C, h, w),
    differentiable w.r.t. the images.
    """
    boxes, kp = boxes.float(), face_kp.float()
    frontal, side = frontal_faces(boxes, kp)
    left, right = kp[:, 1, :2], kp[:, 2, :2]  # (B, 2): the person's eyes
    eyes = left - right  # points to the image's right when the face is seen from the front
    angle = torch.where(frontal, torch.atan2(eyes[:, 1], eyes[:, 0]), torch.zeros_like(side))
    cos, sin = torch.cos(angle), torch.sin(angle)
    middle = 0.5 * (left + right)  # (B, 2)
    down = (0.5 - EYE_ROW) * side  # from the eye midpoint to the crop centre, along the face's vertical
    centre = torch.where(frontal[:, None], middle + down[:, None] * torch.stack((-sin, cos), dim=1),
                         0.5 * (boxes[:, :2] + boxes[:, 2:]))  # (B, 2)
    half_h, half_w = 0.5 * side, 0.5 * side * size[1] / size[0]
    theta = torch.stack((
        torch.stack((cos * half_w, -sin * half_h, centre[:, 0]), dim=1),
        torch.stack((sin * half_w, cos * half_h, centre[:, 1]), dim=1),
    ), dim=1).to(images.dtype)  # (B, 2, 3): NDC of the crop -> NDC of the image
    grid = F.affine_grid(theta, [images.shape[0], images.shape[1], *size], align_corners=ALIGN_CORNERS)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=ALIGN_CORNERS)


class FaceLoss(nn.Module):
    """net: a frozen face network (`lwgan.nets.load_feature_net("dlib" | "sphere20a", ...)`) returning a
    tuple of feature levels; `names` name them (default: the net's FEATURE_NAMES, else SphereFace's), `size`
    is its crop (default: the net's CROP_SIZE).

    forward(fake (B, 3, H, W), real (B, 3, H, W), boxes (B, 4) NDC head boxes of the target, face_kp
    (B, 5, 3) or None) -> LossTerm with stats per feature level.
    """

    def __init__(self, net: nn.Module, size: tuple[int, int] | None = None,
                 names: tuple[str, ...] | None = None, bf16: bool = False) -> None:
        super().__init__()
        self.net = net
        self.bf16 = bool(bf16)  # the network under bfloat16 autocast; differences taken widened
        self.size = tuple(size or getattr(net, "CROP_SIZE", CROP_SIZE))
        self.names = tuple(names or getattr(net, "FEATURE_NAMES", FACE_FEATURES))

    def crops(self, images: torch.Tensor, boxes: torch.Tensor, face_kp: torch.Tensor | None) -> torch.Tensor:
        if face_kp is None:
            return crop_boxes(images, boxes, self.size)
        return aligned_crops(images, boxes, face_kp, self.size)

    def forward(self, fake: torch.Tensor, real: torch.Tensor, boxes: torch.Tensor,
                face_kp: torch.Tensor | None = None) -> LossTerm:
        fake_crops = self.crops(fake, boxes, face_kp)
        with torch.no_grad():
            real_crops = self.crops(real, boxes, face_kp)
        with feature_autocast(fake, self.bf16):
            fake_features = self.net(fake_crops)
            with torch.no_grad():
                real_features = self.net(real_crops)
        total = torch.zeros((), device=fake.device)
        stats = {}
        for name, f, r in zip(self.names, fake_features, real_features, strict=True):
            stats[name] = (wide(f) - wide(r)).abs().mean()
            total = total + stats[name]
        return LossTerm(total, detached(**stats))
