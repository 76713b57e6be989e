"""Options of the LWGAN generator and discriminator, validated once."""

from __future__ import annotations

import dataclasses
from typing import Literal

from lwgan.nets.inpaint import FILLS

Norm = Literal["instance", "batch", "none"]
NORMS: tuple[str, ...] = ("instance", "batch", "none")
HEADS: tuple[str, ...] = ("direct", "residual")
BG_HEADS: tuple[str, ...] = (*HEADS, "hole")
# What a trained G puts in the background's hole (`Generator.background`): "learned", its background
# stream's output; "fill", the stream's classical base alone (`NetOptions.bg_fill`; residual heads only).
BACKGROUND_MODES: tuple[str, ...] = ("learned", "fill")
# What a user chooses: one of those, or "auto" (`resolve_background`).
BACKGROUND_CHOICES: tuple[str, ...] = ("auto", *BACKGROUND_MODES)

# The generator's encoders halve the resolution this many times (the original: n_down = 3).
GENERATOR_DOWNSAMPLINGS = 3
# Channel widths stop growing at this multiple of `base_width` (the original: 64 -> 512).
MAX_WIDTH_MULTIPLE = 8
# Residual attention heads start at sigmoid(+-6) = 0.9975 / 0.0025: the rendered mask (4 = 0.982 / 0.018
# blends 1.8 % of the background into the body of an untrained G; README "Output quality against the warp")
ATTENTION_PRIOR = 6.0


@dataclasses.dataclass(frozen=True)
class NetOptions:
    """Architecture of the generator (three streams) and of the patch discriminator.

    base_width:      channels of the first generator convolution and of the first discriminator layer
                     (the original's conv_dim = ndf = 64); deeper layers use 2x, 4x, 8x, capped at 8x.
    res_blocks:      residual blocks at the bottleneck of every generator stream (the original: 6).
    image_size:      side of the square training images; inputs of another size are refused, so that a
                     model is never silently run at a resolution it was not built for.
    norm:            "instance" (the original), "batch" or "none"; generator norms are affine,
                     discriminator instance norms are not (as in the original's pix2pix discriminator).
    spectral_norm_d: spectral normalisation on every discriminator convolution (not in the original).
    d_layers:        stride-2 layers of the discriminator (the original: 4 -> 14x14 scores at 256^2).
    color_head:      "direct" (the original: P = tanh(conv), A = sigmoid(conv)) or "residual": the SID and
                     TSF heads predict residuals over what no network needs to learn (P over the source,
                     and over the warped source filled by pull-push inpainting; A's logit over the
                     rendered background), zero-initialised, so an untrained G starts at the warp.
    bg_head:         "direct" (the original: I_bg = tanh(conv)), "residual": I_bg = classical inpainting
                     of the source's known background (`bg_fill`) + a zero-initialised residual, or "hole":
                     the same in the hole only, the known background being the source's own pixels.
    bg_fill:         the residual background head's base: "harmonic" (pull-push relaxed toward the
                     harmonic interpolant) or "pull_push" (`lwgan.nets.inpaint`).
    attention_prior: with residual heads, the logit the attention starts at: +this on the rendered
                     background, -this on the body (A = sigmoid(conv + prior * (2 B - 1))).
    tsf_detail:      0, or the odd side (pixels) of a box: the TSF stream's residual colour keeps only what
                     is finer than that box (r - its box mean), so the warped source's own low frequencies,
                     its colours and shading, pass through and G adds detail (residual heads only).
    """

    base_width: int = 64
    res_blocks: int = 6
    image_size: int = 256
    norm: Norm = "instance"
    spectral_norm_d: bool = False
    d_layers: int = 4
    color_head: str = "direct"
    bg_head: str = "direct"
    bg_fill: str = "harmonic"
    attention_prior: float = ATTENTION_PRIOR
    tsf_detail: int = 0

    def __post_init__(self) -> None:
        if self.base_width < 1:
            raise ValueError(f"NetOptions.base_width must be >= 1, got {self.base_width}")
        if self.res_blocks < 0:
            raise ValueError(f"NetOptions.res_blocks must be >= 0, got {self.res_blocks}")
        if self.norm not in NORMS:
            raise ValueError(f"NetOptions.norm must be one of {NORMS}, got {self.norm!r}")
        for name, heads in (("color_head", HEADS), ("bg_head", BG_HEADS)):
            if getattr(self, name) not in heads:
                raise ValueError(f"NetOptions.{name} must be one of {heads}, got {getattr(self, name)!r}")
        if self.bg_fill not in FILLS:
            raise ValueError(f"NetOptions.bg_fill must be one of {FILLS}, got {self.bg_fill!r}")
        if not 0.0 <= self.attention_prior <= 20.0:
            raise ValueError(f"NetOptions.attention_prior must be in [0, 20], got {self.attention_prior}")
        if self.tsf_detail and (self.tsf_detail < 3 or self.tsf_detail % 2 == 0
                                or self.color_head != "residual"):
            raise ValueError(f"NetOptions.tsf_detail must be 0 or an odd box side >= 3 with residual colour "
                             f"heads, got {self.tsf_detail} with color_head {self.color_head!r}")
        if self.d_layers < 1:
            raise ValueError(f"NetOptions.d_layers must be >= 1, got {self.d_layers}")
        step = 2**GENERATOR_DOWNSAMPLINGS
        if self.image_size < step or self.image_size % step:
            raise ValueError(f"NetOptions.image_size must be a positive multiple of {step} (the generator "
                             f"halves it {GENERATOR_DOWNSAMPLINGS} times), got {self.image_size}")
        if self.image_size // 2**self.d_layers < 3:
            raise ValueError(f"NetOptions.d_layers={self.d_layers} leaves no discriminator output at "
                             f"image_size={self.image_size}: image_size / 2**d_layers must be >= 3")


def resolve_background(choice: str, trained_on: str, applied_to: str, residual: bool) -> str:
    """The `BACKGROUND_MODES` mode that `choice` means for a G trained on `trained_on` data and run on
    `applied_to` data (each "synthetic", lwgan's synthetic set, "footage" or "unknown"); residual: whether
    its background head has a classical base. "auto" is "fill" where a G that learnt its background
    stream on the synthetic set's drawn backgrounds is run on real footage, which that stream makes
    worse than its own base (README "On real people"), and "learned" otherwise: on data like its
    training data, for a G trained on footage, or where what it was trained on was not recorded."""
    if choice not in BACKGROUND_CHOICES:
        raise ValueError(f"background must be one of {', '.join(BACKGROUND_CHOICES)}, got {choice!r}")
    if choice != "auto":
        return choice
    return "fill" if residual and trained_on == "synthetic" and applied_to == "footage" else "learned"


def width(base: int, level: int) -> int:
    """Channels at encoder level `level` (0 = full resolution): base * min(2**level, 8)."""
    return base * min(2**level, MAX_WIDTH_MULTIPLE)
