"""The LWGAN generator: background (BG), source-identity (SID) and transfer (TSF) streams joined by the
Liquid Warping Block.

Shapes at image size H x W (H, W multiples of 8) and base width w (64 in the paper):

    BG   ResNet   in [I_s * M_bg, M_bg] (B, 4, H, W)
                  7x7 conv w -> three stride-2 3x3 convs 2w, 4w, 8w (H/2, H/4, H/8) -> res_blocks residual
                  blocks at H/8 -> three stride-2 3x3 transposed convs 4w, 2w, w -> 7x7 conv 3, tanh
    SID  ResUNet  in [I_s * foreground(C_s), C_s] (B, 7, H, W)
    TSF  ResUNet  in [warp(I_s, T), C_t] (B, 7, H, W)
                  the same encoder and bottleneck as BG; every decoder step (transposed conv) is followed
                  by a skip: concat(encoder feature of that scale, upsampled) -> 3x3 conv -> norm -> ReLU;
                  two 7x7 heads: colour P (3 ch, tanh) and attention A (1 ch, sigmoid)

Liquid Warping Block (LWB): the TSF stream adds the SID stream's features, warped into the target frame,
at these `res_blocks + 3` points (the original's `ImpersonatorGenerator.infer_front`):

    after encoder level 1, 2, 3 (the outputs of the stride-2 convs + norm + ReLU at H/2, H/4, H/8), and
    after every residual block (at H/8),

    tsf_feature += warp(sid_feature, resize_flow(T, sid_feature size))

The sums, not the plain TSF features, are what the TSF decoder's skips read. The full-resolution 7x7
encoder layer gets no LWB input. `resize_flow` keeps OUTSIDE where most of a coarse pixel has no source
correspondence, so there the SID features contribute zero (the original resized T bilinearly, which
blends the background's sentinel into the positions along the silhouette).

Outputs: I_bg = BG(...), I_s_rec = A_s * I_bg + (1 - A_s) * P_s, I_t = A_t * I_bg + (1 - A_t) * P_t,
A = 1 selecting the background. Inputs must have the size `NetOptions.image_size`.

Residual heads (`NetOptions.color_head` / `bg_head` = "residual"; "direct" is the original). The 7x7 head
convolutions are zero-initialised and add to what needs no network (`HeadPrior`):

    P_s = clip(I_s + conv),  P_t = clip(fill(warp(I_s, T)) + conv),  A = sigmoid(conv + a * (2 B - 1)),
    I_bg = clip(fill_bg(I_s * M_bg) + conv)        (bg_head "hole": M_bg * I_s + (1 - M_bg) * that)

(with `NetOptions.tsf_detail` = k, P_t's conv is replaced by conv - box_k(conv): only detail finer than a
k x k box is added to the warp),

fill = pull-push inpainting (`lwgan.nets.inpaint`: the target's body pixels that the source does not see
take the colours around them), fill_bg = `NetOptions.bg_fill` (by default the harmonic fill: the background
behind the source's body continued smoothly from the background around it), B = the
rendered background of the stream's conditioning map (1 = background), clip to [-1, 1], a =
`NetOptions.attention_prior` (default 6). An untrained G therefore outputs the warped source over the
inpainted background (attention 0.9975 / 0.0025 by the rendered masks), and training learns what the warp
gets wrong, instead of starting from noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from lwgan.nets.blocks import ResidualBlock, conv_norm_relu, init_weights
from lwgan.nets.inpaint import fill, pull_push
from lwgan.nets.masks import BACKGROUND_CHANNEL, box_mean, foreground
from lwgan.nets.options import BACKGROUND_MODES, GENERATOR_DOWNSAMPLINGS, NetOptions, width
from lwgan.warp.flow import flow_valid, resize_flow, warp

COND_CHANNELS = 4  # the conditioning map C: 3 surface-code channels + 1 background channel


@dataclasses.dataclass(frozen=True)
class HeadPrior:
    """What a stream's residual heads add to: color (B, 3, H, W) in [-1, 1] for P, background
    (B, 1, H, W) in {0, 1} (1 = rendered background) for A's logit."""

    color: torch.Tensor
    background: torch.Tensor


def _head(in_channels: int, out_channels: int, activation: nn.Module | None) -> nn.Sequential:
    """A 7x7 head convolution, with the original's output activation ("direct") or none ("residual")."""
    conv = nn.Conv2d(in_channels, out_channels, 7, padding=3, bias=False)
    return nn.Sequential(conv) if activation is None else nn.Sequential(conv, activation)


def _encoder(in_channels: int, opts: NetOptions) -> nn.ModuleList:
    """Level 0: 7x7 conv at full size; levels 1..3: stride-2 3x3 convs (2w, 4w, 8w at H/2, H/4, H/8)."""
    layers = [conv_norm_relu(in_channels, opts.base_width, 7, 1, opts.norm)]
    for level in range(1, GENERATOR_DOWNSAMPLINGS + 1):
        layers.append(conv_norm_relu(width(opts.base_width, level - 1), width(opts.base_width, level), 3, 2,
                                     opts.norm))
    return nn.ModuleList(layers)


def _check_size(x: torch.Tensor, opts: NetOptions, name: str) -> None:
    if tuple(x.shape[-2:]) != (opts.image_size, opts.image_size):
        raise ValueError(f"{name} has spatial size {tuple(x.shape[-2:])}, but the network was built for "
                         f"NetOptions.image_size={opts.image_size}")


class ResNetGenerator(nn.Module):
    """The background stream: (B, 4, H, W) [masked image, mask] -> (B, 3, H, W) in [-1, 1]."""

    def __init__(self, in_channels: int, opts: NetOptions) -> None:
        super().__init__()
        self.encoder = _encoder(in_channels, opts)
        bottom = width(opts.base_width, GENERATOR_DOWNSAMPLINGS)
        self.resnets = nn.Sequential(*(ResidualBlock(bottom, opts.norm) for _ in range(opts.res_blocks)))
        self.decoder = nn.Sequential(*(
            conv_norm_relu(width(opts.base_width, level), width(opts.base_width, level - 1), 3, 2, opts.norm,
                           transposed=True)
            for level in range(GENERATOR_DOWNSAMPLINGS, 0, -1)
        ))
        self.residual = opts.bg_head in ("residual", "hole")
        self.head = _head(opts.base_width, 3, None if self.residual else nn.Tanh())

    def forward(self, x: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C_in, H, W); base (B, 3, H, W): what the residual head adds to (residual bg_head only)."""
        if self.residual != (base is not None):
            raise ValueError("a residual background head needs `base`, a direct one takes none")
        for layer in self.encoder:
            x = layer(x)
        out = self.head(self.decoder(self.resnets(x)))  # (B, 3, H, W)
        return (base + out).clamp(-1.0, 1.0) if base is not None else out


@dataclasses.dataclass(frozen=True)
class ResUNetOutput:
    """What a ResUNet stream produces.

    color:     (B, 3, H, W) in [-1, 1], the colour head P.
    attention: (B, 1, H, W) in [0, 1], the attention head A (1 = take the background stream's pixel).
    features:  the `3 + res_blocks` features at the LWB points (module docstring), in order: encoder
               levels 1, 2, 3 ((B, 2w, H/2, W/2), (B, 4w, H/4, W/4), (B, 8w, H/8, W/8)), then the output
               of every residual block ((B, 8w, H/8, W/8) each). With `injected`, these include it.
    """

    color: torch.Tensor
    attention: torch.Tensor
    features: tuple[torch.Tensor, ...]


class ResUNet(nn.Module):
    """The SID and TSF streams: a ResNet encoder/decoder with U-Net skips and colour/attention heads.
    detail: 0, or a residual colour head keeps only what is finer than a box of this side
    (`NetOptions.tsf_detail`, given to the TSF stream)."""

    def __init__(self, in_channels: int, opts: NetOptions, detail: int = 0) -> None:
        super().__init__()
        self.detail = detail
        self.encoder = _encoder(in_channels, opts)
        bottom = width(opts.base_width, GENERATOR_DOWNSAMPLINGS)
        self.resnets = nn.ModuleList(ResidualBlock(bottom, opts.norm) for _ in range(opts.res_blocks))
        levels = range(GENERATOR_DOWNSAMPLINGS, 0, -1)
        self.decoder = nn.ModuleList(
            conv_norm_relu(width(opts.base_width, lv), width(opts.base_width, lv - 1), 3, 2, opts.norm,
                           transposed=True)
            for lv in levels
        )
        self.skips = nn.ModuleList(  # concat(skip, upsampled) -> the skip's width
            conv_norm_relu(2 * width(opts.base_width, lv - 1), width(opts.base_width, lv - 1), 3, 1,
                           opts.norm)
            for lv in levels
        )
        self.residual = opts.color_head == "residual"
        self.attention_prior = opts.attention_prior
        self.color_head = _head(opts.base_width, 3, None if self.residual else nn.Tanh())
        self.attention_head = _head(opts.base_width, 1, None if self.residual else nn.Sigmoid())

    @property
    def num_lwb_points(self) -> int:
        return GENERATOR_DOWNSAMPLINGS + len(self.resnets)

    def forward(self, x: torch.Tensor, injected: Sequence[torch.Tensor] | None = None,
                prior: HeadPrior | None = None) -> ResUNetOutput:
        """x: (B, C_in, H, W). injected: None or `num_lwb_points` tensors shaped like `features`, added
        at the LWB points (the TSF stream receives the warped SID features here). prior: what residual
        heads add to (needed by, and only by, residual heads)."""
        if self.residual != (prior is not None):
            raise ValueError("residual colour/attention heads need `prior`, direct ones take none")
        if injected is not None and len(injected) != self.num_lwb_points:
            raise ValueError(f"expected {self.num_lwb_points} injected feature maps (3 encoder levels + "
                             f"{len(self.resnets)} residual blocks), got {len(injected)}")
        features: list[torch.Tensor] = []

        def lwb(h: torch.Tensor) -> torch.Tensor:
            if injected is not None:
                h = h + injected[len(features)]
            features.append(h)
            return h

        skips = [self.encoder[0](x)]  # (B, w, H, W)
        for layer in self.encoder[1:]:
            skips.append(lwb(layer(skips[-1])))  # (B, 2w | 4w | 8w, H/2 | H/4 | H/8, ...)
        h = skips.pop()  # (B, 8w, H/8, W/8)
        for block in self.resnets:
            h = lwb(block(h))
        for up, skip in zip(self.decoder, self.skips, strict=True):
            h = up(h)  # doubles the size, halves the width
            h = skip(torch.cat((skips.pop(), h), dim=1))
        color, attention = self.color_head(h), self.attention_head(h)
        if prior is not None:
            if self.detail:
                color = color - box_mean(color, self.detail)
            color = (prior.color + color).clamp(-1.0, 1.0)
            attention = torch.sigmoid(attention + self.attention_prior * (2.0 * prior.background - 1.0))
        return ResUNetOutput(color, attention, tuple(features))


def liquid_warping_block(
    features: Sequence[torch.Tensor], flow_map: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """SID features warped into the target frame, one per LWB point.

    features: SID feature maps (B, C_i, h_i, w_i).  flow_map: T (B, H, W, 2) NDC, OUTSIDE = no source.
    Returns warp(f_i, resize_flow(T, (h_i, w_i))) for each, (B, C_i, h_i, w_i), zero where T is OUTSIDE.
    The flow is resized once per distinct feature size.
    """
    flows: dict[tuple[int, int], torch.Tensor] = {}
    out = []
    for feat in features:
        size = (int(feat.shape[-2]), int(feat.shape[-1]))
        if size not in flows:
            flows[size] = resize_flow(flow_map, size)
        out.append(warp(feat, flows[size]))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class GeneratorOutput:
    """Everything one generator pass produces; images (B, 3, H, W) in [-1, 1], attentions (B, 1, H, W)
    in [0, 1] with 1 = background.

    bg:            the background stream's inpainted background I_bg.
    src_rec:       the source reconstruction A_s * I_bg + (1 - A_s) * P_s.
    tgt:           the synthesised target A_t * I_bg + (1 - A_t) * P_t.
    src_color / src_attention: the SID heads P_s, A_s.
    tgt_color / tgt_attention: the TSF heads P_t, A_t.
    warped_src:    warp(I_s, T), the TSF stream's image input (0 where T is OUTSIDE).
    """

    bg: torch.Tensor
    src_rec: torch.Tensor
    tgt: torch.Tensor
    src_color: torch.Tensor
    src_attention: torch.Tensor
    tgt_color: torch.Tensor
    tgt_attention: torch.Tensor
    warped_src: torch.Tensor


def compose(attention: torch.Tensor, background: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """A * background + (1 - A) * color: (B, 1, H, W), (B, 3, H, W), (B, 3, H, W) -> (B, 3, H, W)."""
    return attention * background + (1.0 - attention) * color


class Generator(nn.Module):
    """The three-stream LWGAN generator; see the module docstring for the architecture and the LWB.

    To imitate many targets from one source, run `sid` once and `tsf` per target with
    `liquid_warping_block(sid_output.features, T)`; `forward` does exactly that for one pair.
    """

    def __init__(self, opts: NetOptions | None = None) -> None:
        super().__init__()
        self.opts = opts or NetOptions()
        self.bg = ResNetGenerator(4, self.opts)
        self.sid = ResUNet(3 + COND_CHANNELS, self.opts)
        self.tsf = ResUNet(3 + COND_CHANNELS, self.opts, detail=self.opts.tsf_detail)
        init_weights(self)
        residual_heads = [self.bg.head] if self.bg.residual else []
        if self.opts.color_head == "residual":
            residual_heads += [self.sid.color_head, self.sid.attention_head, self.tsf.color_head,
                               self.tsf.attention_head]
        for head in residual_heads:
            nn.init.zeros_(head[0].weight)  # an untrained G outputs its priors (module docstring)
        self.background = "learned"  # or "fill": see `inpaint`; chosen at inference, not saved

    def use_background(self, mode: str) -> None:
        """What `inpaint` puts in the hole: "learned" (the background stream) or "fill" (its classical
        base alone, without the stream's residual; a residual background head only)."""
        if mode not in BACKGROUND_MODES:
            raise ValueError(f"background must be one of {', '.join(BACKGROUND_MODES)}, got {mode!r}")
        if mode == "fill" and not self.bg.residual:
            raise ValueError(f"background 'fill' needs a residual background head (bg_head hole or "
                             f"residual); this G's is {self.opts.bg_head!r}")
        self.background = mode

    def inpaint(self, src_img: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """The background stream's I_bg (B, 3, H, W) from src_img (B, 3, H, W) and its known background
        known (B, 1, H, W) in {0, 1}; a residual head adds to `NetOptions.bg_fill`'s inpainting, and the
        "hole" head keeps the known background as it is. With `use_background("fill")` the stream's
        network is not run and its base is the output."""
        known_bg = src_img * known
        base = fill(known_bg, known, self.opts.bg_fill) if self.bg.residual else None
        if self.background == "fill" and base is not None:
            bg = base.clamp(-1.0, 1.0)
        else:
            bg = self.bg(torch.cat((known_bg, known), dim=1), base=base)
        return known_bg + (1.0 - known) * bg if self.opts.bg_head == "hole" else bg

    def encode(self, src_img: torch.Tensor, src_cond: torch.Tensor) -> ResUNetOutput:
        """The SID stream on the source's foreground (the body grown by 1 px, as in the original); a
        residual head adds to the source itself."""
        prior = (HeadPrior(src_img, src_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1])
                 if self.sid.residual else None)
        return self.sid(torch.cat((src_img * foreground(src_cond), src_cond), dim=1), prior=prior)

    def transfer(self, warped: torch.Tensor, seen: torch.Tensor | None, tgt_cond: torch.Tensor,
                 injected: Sequence[torch.Tensor]) -> ResUNetOutput:
        """The TSF stream on the warped source (B, 3, H, W) and the target's conditioning map, with the
        SID features `injected` by the LWB; a residual head adds to the warped source with its unseen
        pixels (seen (B, 1, H, W) 0, needed only then) filled by pull-push."""
        prior = (HeadPrior(pull_push(warped, seen), tgt_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1])
                 if self.tsf.residual else None)
        return self.tsf(torch.cat((warped, tgt_cond), dim=1), injected=injected, prior=prior)

    def forward(
        self,
        src_img: torch.Tensor,
        src_bg_mask: torch.Tensor,
        src_cond: torch.Tensor,
        tgt_cond: torch.Tensor,
        flow_t_from_s: torch.Tensor,
    ) -> GeneratorOutput:
        """src_img (B, 3, H, W) in [-1, 1]; src_bg_mask (B, 1, H, W) in {0, 1}, 1 = background known
        (the original: the rendered background eroded by 15 px, `masks.background(src_cond, 15)`);
        src_cond, tgt_cond (B, 4, H, W) conditioning maps; flow_t_from_s (B, H, W, 2) the flow T that
        samples the source image at every target pixel (OUTSIDE where nothing corresponds).

        The SID stream sees the source's foreground: the body grown by 1 px (1 - its rendered background
        eroded by 3 px, as in the original)."""
        for name, tensor in (("src_img", src_img), ("src_bg_mask", src_bg_mask), ("src_cond", src_cond),
                             ("tgt_cond", tgt_cond)):
            _check_size(tensor, self.opts, name)
        if tuple(flow_t_from_s.shape[1:3]) != tuple(tgt_cond.shape[-2:]):
            raise ValueError(f"flow_t_from_s has size {tuple(flow_t_from_s.shape[1:3])}, expected the "
                             f"target's {tuple(tgt_cond.shape[-2:])}")
        bg = self.inpaint(src_img, src_bg_mask)  # (B, 3, H, W)
        warped_src = warp(src_img, flow_t_from_s)  # (B, 3, H, W)
        seen = (flow_valid(flow_t_from_s)[:, None].to(warped_src.dtype)  # (B, 1, H, W)
                if self.tsf.residual else None)
        sid = self.encode(src_img, src_cond)
        tsf = self.transfer(warped_src, seen, tgt_cond, liquid_warping_block(sid.features, flow_t_from_s))
        return GeneratorOutput(
            bg=bg,
            src_rec=compose(sid.attention, bg, sid.color),
            tgt=compose(tsf.attention, bg, tsf.color),
            src_color=sid.color,
            src_attention=sid.attention,
            tgt_color=tsf.color,
            tgt_attention=tsf.attention,
            warped_src=warped_src,
        )
