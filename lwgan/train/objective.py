"""LWGAN's training objective: what one G update and one D update compute, with every stabiliser of the
paper as an option. The terms (weights from `lwgan.config.TrainParams`, the original's defaults in
brackets):

    G:  L_G = l_adv * L_adv + l_rec * L_rec + l_tsf * L_tsf + l_face * L_face + l_mask * L_mask
              + l_smooth * L_smooth + l_style * L_style + l_tsf_l1 * L_tsf_l1   [1, 10, 10, 5, 1, 1, 0, 0]
        L_adv    LSGAN, G's target 0 for D's scores of the synthesised target       (lwgan.losses.adversarial)
        L_rec    L1 between the source reconstruction and the source
        L_tsf    VGG perceptual distance between the synthesised and the real target (VGG16 by default,
                 relative per-layer distances: lwgan.losses.perceptual)
        L_face   face-network feature distance on the target's aligned head crop (dlib's face ResNet by
                 default, SphereFace-20a as the original: lwgan.losses.face)
        L_mask   BCE of the attention maps (source and target) against their eroded rendered backgrounds
        L_smooth total variation of those attention maps
        L_style  Gram-matrix distance on the same VGG features
        L_tsf_l1 L1 between the synthesised and the real target, the pixels of the target's rendered body
                 counted `tsf_l1_body` times (not in the original: its transfer loss is perceptual only,
                 which leaves pixel colours free to drift from the warp they start at)
    D:  L_D = (D(real) - s)^2 + (D(fake) + 1)^2  [s = real_target = 1: no label smoothing]
              + gp_weight * (|| grad D(x_hat) || - 1)^2                        [gp_weight 0: off]

D's real/fake (and, with the penalty, interpolated) inputs are scored in ONE forward pass of the batch
concatenation, so a D step is one forward and one backward (what DistributedDataParallel expects, and the
spectral-norm power iteration runs once). Instance norm is per sample, so this changes nothing against
separate passes; with `norm: batch` the three share batch statistics.

The original's masks were made at 256^2: the background stream's input erodes the rendered background by
15 px and the attention target by 3 px. They are scaled with the image size here (`scaled_kernel`), so a
64^2 run erodes by 3 and 1 px.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import nn

from lwgan.config import TrainParams
from lwgan.losses import (
    FaceLoss,
    LossTerm,
    PerceptualLoss,
    attention_loss,
    attention_target,
    discriminator_loss,
    generator_loss,
    interpolate,
    penalty_from_scores,
    reconstruction_loss,
    total_variation,
)
from lwgan.losses.terms import native_bf16
from lwgan.nets import FeatureNetInfo, GeneratorOutput, load_feature_net
from lwgan.nets.masks import BACKGROUND_ERODE, FOREGROUND_ERODE, foreground, known_background, scaled_kernel


def generate(generator: nn.Module, batch: Batch, bg_kernel: int) -> GeneratorOutput:
    """G's outputs for a batch; the background stream sees the source's rendered background eroded by
    `bg_kernel` px (`scaled_kernel(BACKGROUND_ERODE, image_size)`), less the person mask grown alike where
    the batch has one (`known_background`). On a crop's padding the outputs hold the real frame
    (`keep_padding`)."""
    bg_mask = known_background(batch.src_cond, bg_kernel, batch.src_person)  # (B, 1, H, W)
    out = generator(batch.src_img, bg_mask, batch.src_cond, batch.tgt_cond, batch.flow)
    return dataclasses.replace(out, src_rec=keep_padding(out.src_rec, batch.src_img, batch.src_valid),
                               tgt=keep_padding(out.tgt, batch.tgt_img, batch.tgt_valid))


def keep_padding(image: torch.Tensor, real: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """`image` with the real frame's pixels where `valid` is 0 (a crop's constant padding), so that no loss
    (and no discriminator) sees an error there and G gets no gradient from it; unchanged when every pixel
    is valid."""
    if valid is None or bool(valid.all()):
        return image
    return valid * image + (1.0 - valid) * real


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """lambda of every generator term, the label-smoothing target and the gradient-penalty weight."""

    adv: float = 1.0
    rec: float = 10.0
    tsf: float = 10.0
    face: float = 5.0
    mask: float = 1.0
    smooth: float = 1.0
    style: float = 0.0
    tsf_l1: float = 0.0
    tsf_l1_body: float = 1.0  # a body pixel's weight in L_tsf_l1 against a background pixel's
    real_target: float = 1.0
    gp: float = 0.0


# Names of the weighted terms as the original logs them (and the paper's Table 1 compares them).
G_TERMS = ("L_adv", "L_rec", "L_tsf", "L_face", "L_mask", "L_smooth", "L_style", "L_tsf_l1")
D_TERMS = ("L_D_real", "L_D_fake", "L_GP")


@dataclasses.dataclass(frozen=True)
class StepLoss:
    """A loss to back-propagate and its named statistics (detached float32 scalars).

    value: scalar tensor. terms: weighted terms by name (G_TERMS / D_TERMS), summing to value.
    stats: further detached statistics (unweighted terms, D's mean scores, VGG per-layer distances ...).
    """

    value: torch.Tensor
    terms: Mapping[str, torch.Tensor]
    stats: Mapping[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch of pairs on the training device (see `lwgan.train.pairs`): images (B, 3, H, W) in [-1, 1],
    conditioning maps (B, 4, H, W), flow T (B, H, W, 2), target head boxes (B, 4) NDC and target face
    keypoints (B, 5, 3) (`lwgan.correspond.maps.FACE_KEYPOINTS`: NDC x, y, depth)."""

    src_img: torch.Tensor
    tgt_img: torch.Tensor
    src_cond: torch.Tensor
    tgt_cond: torch.Tensor
    flow: torch.Tensor
    tgt_head_box: torch.Tensor
    tgt_face_kp: torch.Tensor
    src_valid: torch.Tensor | None = None  # (B, 1, H, W) 1 on the video, 0 on a crop's padding; None: all
    tgt_valid: torch.Tensor | None = None
    src_person: torch.Tensor | None = None  # (B, 1, H, W) the detector's person mask (a task's photo)

    @classmethod
    def from_items(cls, items: Mapping[str, torch.Tensor], device: torch.device,
                   channels_last: bool = False) -> Batch:
        fields = {}
        for f in dataclasses.fields(cls):
            if f.default is None and (f.name not in items or bool(items[f.name].all())):
                continue  # a valid mask that is all ones is no mask (checked here, not on the device)
            t = items[f.name].to(device, non_blocking=True)
            if channels_last and t.dim() == 4 and f.name != "flow":
                t = t.contiguous(memory_format=torch.channels_last)
            fields[f.name] = t
        return cls(**fields)


def feature_losses(p: TrainParams) -> tuple[PerceptualLoss, FaceLoss | None, list[FeatureNetInfo]]:
    """The perceptual loss on `p.perceptual_net` and, when `p.lambda_face` > 0, the face loss on
    `p.face_net`, with where their weights came from; one rule for train and personalisation
    (`lwgan.nets.pretrained.load_feature_net`: a missing network is an error unless `p.substitute_nets`)."""
    vgg, vgg_info = load_feature_net(p.perceptual_net, p.vgg_weights, param="train.vgg_weights",
                                     substitute=p.substitute_nets)
    bf16 = feature_bf16(p)
    perceptual = PerceptualLoss(vgg, norm=p.perceptual_norm, bf16=bf16)
    if p.lambda_face <= 0:
        return perceptual, None, [vgg_info]
    face_net, face_info = load_feature_net(p.face_net, p.face_weights, param="train.face_weights",
                                           substitute=p.substitute_nets)
    return perceptual, FaceLoss(face_net, bf16=bf16), [vgg_info, face_info]


def feature_bf16(p: TrainParams) -> bool:
    """Whether the feature networks run under bfloat16 autocast (`train.feature_bf16`; 'auto' decides on
    this process's training device)."""
    if p.feature_bf16 != "auto":
        return p.feature_bf16 == "bfloat16"
    cuda = p.device == "cuda" or (p.device == "auto" and torch.cuda.is_available())
    return native_bf16("cuda" if cuda else "cpu")


class Objective(nn.Module):
    """The generator forward and both losses; holds the frozen feature networks.

    perceptual: PerceptualLoss over a frozen VGG (`train.perceptual_net`: VGG16 by default, VGG19 as the
    original); face: FaceLoss over a frozen face network (`train.face_net`: dlib's face ResNet by default,
    SphereFace-20a as the original), None when its weight is 0, so the network is not even run.
    """

    def __init__(self, weights: LossWeights, image_size: int, perceptual: PerceptualLoss,
                 face: FaceLoss | None) -> None:
        super().__init__()
        self.weights = weights
        self.perceptual = perceptual
        self.face = face
        self.bg_kernel = scaled_kernel(BACKGROUND_ERODE, image_size)
        self.mask_kernel = scaled_kernel(FOREGROUND_ERODE, image_size)

    def generate(self, generator: nn.Module, batch: Batch) -> GeneratorOutput:
        """G's outputs for a batch (generator: a `Generator`, possibly wrapped by DDP)."""
        return generate(generator, batch, self.bg_kernel)

    def generator_loss(self, out: GeneratorOutput, batch: Batch, discriminator: nn.Module) -> StepLoss:
        """L_G for G's outputs; `discriminator` is the bare D (its parameters frozen by the caller)."""
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        stats: dict[str, torch.Tensor] = {}

        def add(name: str, weight: float, term: LossTerm | None) -> None:
            if term is None:
                return
            terms[name] = weight * term.value
            stats.update({f"raw/{k}": v for k, v in term.stats.items()})

        add("L_adv", w.adv, generator_loss(discriminator(out.tgt, batch.tgt_cond)) if w.adv else None)
        add("L_rec", w.rec, reconstruction_loss(out.src_rec, batch.src_img))
        if w.tsf or w.style:
            perceptual, style = self.perceptual(out.tgt, batch.tgt_img, with_style=w.style > 0)
            add("L_tsf", w.tsf, perceptual)
            add("L_style", w.style, style)
        if w.tsf_l1:
            body = foreground(batch.tgt_cond, 1)  # the target's rendered body, not grown: (B, 1, H, W)
            l1 = reconstruction_loss(out.tgt, batch.tgt_img, body, w.tsf_l1_body).value
            add("L_tsf_l1", w.tsf_l1, LossTerm(l1, {"tsf_l1": l1.detach().float()}))
        if self.face is not None and w.face:
            add("L_face", w.face, self.face(out.tgt, batch.tgt_img, batch.tgt_head_box, batch.tgt_face_kp))
        attention = torch.cat((out.src_attention, out.tgt_attention))  # (2B, 1, H, W)
        target = torch.cat((attention_target(batch.src_cond, self.mask_kernel),
                            attention_target(batch.tgt_cond, self.mask_kernel)))
        add("L_mask", w.mask, attention_loss(attention, target))
        add("L_smooth", w.smooth, total_variation(attention))
        value = torch.stack(list(terms.values())).sum()
        return StepLoss(value, {k: v.detach().float() for k, v in terms.items()}, stats)

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                           cond: torch.Tensor, alpha: torch.Tensor | None = None) -> StepLoss:
        """L_D (+ GP) for real (B, 3, H, W), fake (B, 3, H, W, detached here) and the target's cond;
        alpha (B,): the penalty's interpolation weights (drawn from the global RNG when None)."""
        w = self.weights
        fake = fake.detach()
        images, conds = [real, fake], [cond, cond]
        mixed = None
        if w.gp > 0:
            mixed = interpolate(real, fake, alpha=alpha)
            images.append(mixed)
            conds.append(cond)
        scores = discriminator(torch.cat(images), torch.cat(conds))  # (nB, 1, h, w)
        parts = scores.chunk(len(images))
        adv = discriminator_loss(parts[0], parts[1], real_target=w.real_target)
        stats = dict(adv.stats)
        terms = {"L_D_real": stats["loss_d_real"], "L_D_fake": stats["loss_d_fake"]}
        value = adv.value
        if mixed is not None:
            gp = penalty_from_scores(parts[2], mixed, w.gp)
            value = value + gp.value
            terms["L_GP"] = gp.value.detach().float()
            stats.update(gp.stats)
        return StepLoss(value, terms, {f"raw/{k}": v for k, v in stats.items()})

