"""The LWGAN generator, the Liquid Warping Block and the patch discriminator."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from lwgan.geometry import OUTSIDE, pixel_centers
from lwgan.nets import (
    Generator,
    NetOptions,
    PatchDiscriminator,
    compose,
    count_parameters,
    liquid_warping_block,
    patch_output_size,
)
from lwgan.nets.inpaint import fill
from lwgan.nets.masks import background, box_mean, foreground, known_background
from lwgan.nets.options import resolve_background
from lwgan.warp.flow import warp

SIZE = 64
SMALL = NetOptions(base_width=8, res_blocks=2, image_size=SIZE)


def body_mask(batch: int, size: int = SIZE) -> torch.Tensor:
    """(B, 1, H, W) float: an upright ellipse, a little different in every sample."""
    centres = pixel_centers(size, size)  # (H, W, 2)
    masks = []
    for b in range(batch):
        x, y = centres[..., 0] - 0.05 * b, centres[..., 1]
        masks.append(((x / 0.35) ** 2 + (y / 0.8) ** 2 <= 1.0).float())
    return torch.stack(masks)[:, None]


def cond_map(mask: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) conditioning map: a smooth code on the body, background channel outside."""
    size = mask.shape[-1]
    centres = pixel_centers(size, size).permute(2, 0, 1)[None]  # (1, 2, H, W)
    code = torch.cat((centres * 0.5 + 0.5, torch.full_like(centres[:, :1], 0.3)), dim=1) * mask
    return torch.cat((code, 1.0 - mask), dim=1)


def identity_flow(mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 2): pixel centres on the body, OUTSIDE elsewhere."""
    size = mask.shape[-1]
    centres = pixel_centers(size, size).expand(mask.shape[0], -1, -1, -1)
    return torch.where(mask[:, 0, ..., None] > 0, centres, torch.full_like(centres, OUTSIDE))


def inputs(batch: int = 2, seed: int = 0, size: int = SIZE):
    gen = torch.Generator().manual_seed(seed)
    mask = body_mask(batch, size)
    cond = cond_map(mask)
    image = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    return image, background(cond, 15), cond, cond, identity_flow(mask)


@pytest.fixture(scope="module")
def small_g() -> Generator:
    torch.manual_seed(0)
    return Generator(SMALL)


def test_generator_outputs_have_their_shapes_ranges_and_composition(small_g):
    src, bg_mask, src_cond, tgt_cond, t = inputs()
    out = small_g(src, bg_mask, src_cond, tgt_cond, t)
    for name in ("bg", "src_rec", "tgt", "src_color", "tgt_color", "warped_src"):
        assert getattr(out, name).shape == (2, 3, SIZE, SIZE), name
    for name in ("src_attention", "tgt_attention"):
        a = getattr(out, name)
        assert a.shape == (2, 1, SIZE, SIZE)
        assert a.min() > 0 and a.max() < 1  # sigmoid
    for name in ("bg", "src_color", "tgt_color"):
        v = getattr(out, name)
        assert v.min() > -1 and v.max() < 1  # tanh
    assert torch.allclose(out.src_rec, out.src_attention * out.bg + (1 - out.src_attention) * out.src_color)
    assert torch.allclose(out.tgt, compose(out.tgt_attention, out.bg, out.tgt_color))
    assert torch.equal(out.warped_src, warp(src, t))
    off_body = background(src_cond, 1).expand(-1, 3, -1, -1) > 0
    assert torch.all(out.warped_src[off_body] == 0)  # OUTSIDE samples zero


def test_generator_refuses_inputs_of_another_size(small_g):
    src, bg_mask, src_cond, tgt_cond, t = inputs(size=32)
    with pytest.raises(ValueError, match="image_size=64"):
        small_g(src, bg_mask, src_cond, tgt_cond, t)


@pytest.mark.parametrize(("field", "value"), [("norm", "layer"), ("image_size", 100), ("base_width", 0),
                                              ("d_layers", 5)])
def test_options_name_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        NetOptions(**{"image_size": SIZE, field: value})


def sid_features(g: Generator, seed: int) -> tuple[torch.Tensor, ...]:
    src, _, src_cond, _, _ = inputs(seed=seed)
    return g.sid(torch.cat((src * foreground(src_cond), src_cond), dim=1)).features


def test_lwb_points_are_three_encoder_levels_and_every_residual_block(small_g):
    feats = sid_features(small_g, 0)
    w = SMALL.base_width
    assert [tuple(f.shape[1:]) for f in feats] == [(2 * w, 32, 32), (4 * w, 16, 16), (8 * w, 8, 8),
                                                   (8 * w, 8, 8), (8 * w, 8, 8)]


def test_lwb_with_an_identity_flow_hands_over_aligned_features(small_g):
    feats = sid_features(small_g, 0)
    full = pixel_centers(SIZE, SIZE).expand(2, -1, -1, -1)  # identity everywhere
    for f, warped in zip(feats, liquid_warping_block(feats, full), strict=True):
        assert torch.allclose(warped, f, atol=1e-6)


def test_lwb_follows_a_translation_at_every_scale(small_g):
    feats = sid_features(small_g, 0)
    shift_px = 8  # at the input size: 4, 2, 1 feature pixels at H/2, H/4, H/8
    flow = pixel_centers(SIZE, SIZE).expand(2, -1, -1, -1).clone()
    flow[..., 0] += 2.0 * shift_px / SIZE  # the target pixel (i, j) reads the source at (i, j + 8)
    for f, warped in zip(feats, liquid_warping_block(feats, flow), strict=True):
        s = shift_px * f.shape[-1] // SIZE
        assert torch.allclose(warped[..., : -s], f[..., s:], atol=1e-5)
        assert torch.all(warped[..., -s:].abs() < 1e-5)  # read from beyond the source's edge: zeros


def test_lwb_with_an_outside_flow_hands_over_nothing(small_g):
    feats = sid_features(small_g, 0)
    nowhere = torch.full((2, SIZE, SIZE, 2), OUTSIDE)
    assert all(torch.all(w == 0) for w in liquid_warping_block(feats, nowhere))


def test_tsf_stream_reads_the_source_features_only_through_valid_flow(small_g):
    _, _, _, tgt_cond, t = inputs()
    tsf_in = torch.cat((torch.zeros(2, 3, SIZE, SIZE), tgt_cond), dim=1)  # the same TSF input each time
    a, b = sid_features(small_g, 1), sid_features(small_g, 2)
    with torch.no_grad():
        out_a = small_g.tsf(tsf_in, injected=liquid_warping_block(a, t))
        out_b = small_g.tsf(tsf_in, injected=liquid_warping_block(b, t))
        nowhere = torch.full_like(t, OUTSIDE)
        off_a = small_g.tsf(tsf_in, injected=liquid_warping_block(a, nowhere))
        off_b = small_g.tsf(tsf_in, injected=liquid_warping_block(b, nowhere))
    assert (out_a.color - out_b.color).abs().max() > 1e-3
    assert torch.equal(off_a.color, off_b.color) and torch.equal(off_a.attention, off_b.attention)


def test_target_loss_trains_the_source_stream_through_the_lwb_only_where_the_flow_is_valid():
    torch.manual_seed(0)
    g = Generator(SMALL)
    src, bg_mask, src_cond, tgt_cond, t = inputs()
    for flow, expect_grad in ((t, True), (torch.full_like(t, OUTSIDE), False)):
        g.zero_grad(set_to_none=True)
        g(src, bg_mask, src_cond, tgt_cond, flow).tgt_color.square().mean().backward()
        total = sum(p.grad.abs().sum() for p in g.sid.parameters() if p.grad is not None)
        assert (total > 0) == expect_grad


def test_gradients_reach_every_generator_parameter():
    torch.manual_seed(0)
    g = Generator(SMALL)
    src, bg_mask, src_cond, tgt_cond, t = inputs()
    out = g(src, bg_mask, src_cond, tgt_cond, t)
    loss = (out.src_rec - src).abs().mean() + (out.tgt - src).abs().mean()
    loss.backward()
    dead = [n for n, p in g.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_other_norms_build_and_run(norm):
    opts = NetOptions(base_width=8, res_blocks=1, image_size=SIZE, norm=norm)
    g, d = Generator(opts), PatchDiscriminator(opts)
    out = g(*inputs())
    assert torch.isfinite(out.tgt).all()
    assert d(out.tgt, inputs()[3]).shape == (2, 1, 2, 2)
    has_bias = [m.bias is not None for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert any(has_bias) == (norm == "none")


@pytest.mark.parametrize(("size", "expected"), [(64, 2), (128, 6), (256, 14)])
def test_discriminator_output_size(size, expected):
    opts = NetOptions(base_width=4, res_blocks=0, image_size=size)
    d = PatchDiscriminator(opts)
    scores = d(torch.zeros(1, 3, size, size), torch.zeros(1, 4, size, size))
    assert patch_output_size(size, opts.d_layers) == expected
    assert scores.shape == (1, 1, expected, expected)


def test_discriminator_layout_follows_pix2pix():
    convs = [m for m in PatchDiscriminator(NetOptions(base_width=8, image_size=SIZE)).modules()
             if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (7, 8, 2), (8, 16, 2), (16, 32, 2), (32, 64, 2), (64, 64, 1), (64, 1, 1)]
    norms = [m for m in PatchDiscriminator(NetOptions(base_width=8, image_size=SIZE)).modules()
             if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 4 and not any(n.affine for n in norms)


def test_spectral_norm_switch_parametrizes_every_discriminator_conv():
    plain = PatchDiscriminator(NetOptions(base_width=8, image_size=SIZE))
    sn = PatchDiscriminator(NetOptions(base_width=8, image_size=SIZE, spectral_norm_d=True))
    plain_convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    sn_convs = [m for m in sn.modules() if isinstance(m, nn.Conv2d)]
    assert len(sn_convs) == len(plain_convs) == 6
    assert not any(parametrize.is_parametrized(m, "weight") for m in plain_convs)
    assert all(parametrize.is_parametrized(m, "weight") for m in sn_convs)
    # Each training forward runs one power iteration; after enough of them the effective weight's largest
    # singular value (an exact SVD here) is 1. The 15 iterations at creation alone leave a conv with a
    # small spectral gap up to ~10 % off, depending on the draw.
    torch.manual_seed(0)
    sn.train()
    with torch.no_grad():
        for _ in range(200):
            sn(torch.randn(1, 3, SIZE, SIZE), torch.randn(1, 4, SIZE, SIZE))
    sn.eval()
    for conv in sn_convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert abs(sigma.item() - 1.0) < 0.01


def test_bfloat16_autocast_forward_is_finite(small_g):
    d = PatchDiscriminator(NetOptions(base_width=8, image_size=SIZE, spectral_norm_d=True))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = small_g(*inputs())
        scores = d(out.tgt, inputs()[3])
    assert out.tgt.dtype == torch.bfloat16  # the convolutions really ran in bfloat16
    for name in ("bg", "src_rec", "tgt", "src_attention", "tgt_attention"):
        assert torch.isfinite(getattr(out, name)).all(), name
    assert torch.isfinite(scores).all()


def test_channels_last_gives_the_same_result(small_g):
    args = inputs()
    with torch.no_grad():
        ref = small_g(*args)
        g_cl = small_g.to(memory_format=torch.channels_last)
        cl_args = [a.contiguous(memory_format=torch.channels_last) if a.dim() == 4 and a.shape[-1] != 2
                   else a for a in args]
        out = g_cl(*cl_args)
        small_g.to(memory_format=torch.contiguous_format)
    assert torch.allclose(out.tgt, ref.tgt, atol=1e-5)
    assert torch.allclose(out.src_rec, ref.src_rec, atol=1e-5)


def test_parameter_counts_at_the_paper_configuration():
    g, d = Generator(NetOptions()), PatchDiscriminator(NetOptions())
    assert count_parameters(g.bg) == 31_445_184
    assert count_parameters(g.sid) == count_parameters(g.tsf) == 33_006_912
    assert count_parameters(g) == 97_459_008
    assert count_parameters(d) == 6_963_649
    assert count_parameters(PatchDiscriminator(NetOptions(spectral_norm_d=True))) == 6_963_649


RESIDUAL = NetOptions(base_width=8, res_blocks=2, image_size=SIZE, color_head="residual", bg_head="residual")


def test_untrained_residual_heads_give_the_warp_over_the_known_background():
    torch.manual_seed(0)
    g = Generator(RESIDUAL)
    src, bg_mask, src_cond, _, _ = inputs()
    shift = torch.tensor([0.1, 0.0])  # the target: the body moved right by 0.05 NDC, sampling the source
    tgt_mask = body_mask(2).roll(2, dims=-1)
    tgt_cond = cond_map(tgt_mask)
    flow = identity_flow(tgt_mask) - torch.where(tgt_mask[:, 0, ..., None] > 0, shift / 2, 0)
    with torch.no_grad():
        out = g(src, bg_mask, src_cond, tgt_cond, flow)
    sampled = F.grid_sample(src, flow, align_corners=False)  # torch's own sampler: the warp
    on_body = (tgt_mask > 0).expand(-1, 3, -1, -1)
    leak = 1.0 / (1.0 + math.exp(RESIDUAL.attention_prior))  # the attention's share of the other stream
    assert (out.tgt - sampled)[on_body].abs().max() < 2 * 2 * leak
    known = (bg_mask * (1 - tgt_mask) > 0).expand(-1, 3, -1, -1)  # target background the source shows
    assert (out.tgt - src)[known].abs().max() < 2 * 2 * leak
    assert torch.equal(out.src_color, src.clamp(-1, 1))
    assert torch.equal(out.bg[bg_mask.expand(-1, 3, -1, -1) > 0], src[bg_mask.expand(-1, 3, -1, -1) > 0])


def test_an_untrained_background_stream_outputs_its_fill_of_the_source():
    src, bg_mask, src_cond, tgt_cond, t = inputs()
    outs = {}
    for method in ("harmonic", "pull_push"):
        torch.manual_seed(0)
        g = Generator(dataclasses.replace(RESIDUAL, bg_fill=method))
        with torch.no_grad():
            outs[method] = g(src, bg_mask, src_cond, tgt_cond, t).bg
        assert torch.allclose(outs[method], fill(src * bg_mask, bg_mask, method).clamp(-1, 1), atol=1e-6)
    hole = (bg_mask == 0).expand(-1, 3, -1, -1)
    assert (outs["harmonic"] - outs["pull_push"])[hole].abs().max() > 0.01  # the two bases differ there


def test_known_background_leaves_out_the_mesh_and_the_person_mask_each_grown():
    """Against scikit-image's binary morphology on padded masks (outside the image: background for the
    erosion, nobody for the dilation): the rendered background eroded by k, less the person mask (the
    body and a block above it, like hair) dilated by k; without a mask, the erosion alone."""
    from skimage.morphology import dilation, erosion

    k = 5
    body = body_mask(2)
    person = body.clone()
    person[:, :, 2:12, 24:40] = 1.0  # above the head, partly outside the mesh
    got = known_background(cond_map(body), k, person)
    alone = known_background(cond_map(body), k)
    square, pad = np.ones((k, k), bool), k
    for b in range(2):
        bg = np.pad(body[b, 0].numpy() == 0, pad, constant_values=True)
        who = np.pad(person[b, 0].numpy() > 0, pad, constant_values=False)
        eroded = erosion(bg, square)[pad:-pad, pad:-pad]
        grown = dilation(who, square)[pad:-pad, pad:-pad]
        assert np.array_equal(got[b, 0].numpy() > 0.5, eroded & ~grown)
        assert np.array_equal(alone[b, 0].numpy() > 0.5, eroded)
    assert torch.equal(alone, background(cond_map(body), k))
    assert (alone - got).sum() > 0  # the block and its margin were known without the mask


def test_residual_heads_learn_after_the_first_update():
    torch.manual_seed(0)
    g = Generator(RESIDUAL)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    src, bg_mask, src_cond, tgt_cond, t = inputs()
    for _ in range(2):
        opt.zero_grad()
        out = g(src, bg_mask, src_cond, tgt_cond, t)
        ((out.src_rec - src.flip(-1)).abs().mean() + (out.tgt - src.flip(-1)).abs().mean()).backward()
        opt.step()
    dead = [n for n, p in g.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead


def _train_background(g: Generator, src, bg_mask, src_cond, tgt_cond, t, steps: int = 3) -> None:
    """A few Adam steps of the background stream alone towards the mirrored source."""
    opt = torch.optim.Adam(g.bg.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        (g(src, bg_mask, src_cond, tgt_cond, t).bg - src.flip(-1)).abs().mean().backward()
        opt.step()


def test_the_hole_head_keeps_the_known_background_and_learns_in_the_hole():
    """bg_head "hole": after training steps that change the residual head, I_bg is still exactly the
    source on the known background, while in the hole it moved off the untrained fill."""
    torch.manual_seed(0)
    g = Generator(dataclasses.replace(RESIDUAL, bg_head="hole"))
    src, bg_mask, src_cond, tgt_cond, t = inputs()
    _train_background(g, src, bg_mask, src_cond, tgt_cond, t)
    with torch.no_grad():
        bg = g(src, bg_mask, src_cond, tgt_cond, t).bg
    known = bg_mask.expand(-1, 3, -1, -1) > 0
    assert torch.equal(bg[known], src[known])
    base = fill(src * bg_mask, bg_mask, RESIDUAL.bg_fill).clamp(-1, 1)
    assert (bg - base)[~known].abs().max() > 0.01


def test_the_fill_background_is_the_base_fill_whatever_the_stream_learnt():
    """use_background("fill"): the hole holds the classical fill (checked against the harmonic fill's
    defining property: each hole pixel the mean of its four neighbours), the known background the source,
    and training the background stream changes nothing; "learned" does see the training."""
    torch.manual_seed(0)
    g = Generator(dataclasses.replace(RESIDUAL, bg_head="hole", bg_fill="harmonic"))
    src, bg_mask, src_cond, tgt_cond, t = inputs()
    g.use_background("fill")
    with torch.no_grad():
        before = g(src, bg_mask, src_cond, tgt_cond, t).bg
    g.use_background("learned")
    _train_background(g, src, bg_mask, src_cond, tgt_cond, t)
    with torch.no_grad():
        learned = g(src, bg_mask, src_cond, tgt_cond, t).bg
        g.use_background("fill")
        after = g(src, bg_mask, src_cond, tgt_cond, t).bg
    assert torch.equal(before, after) and (learned - after).abs().max() > 0.01
    known = bg_mask.expand(-1, 3, -1, -1) > 0
    assert torch.equal(after[known], src[known])
    inner = after[..., 1:-1, 1:-1]
    neighbours = (after[..., :-2, 1:-1] + after[..., 2:, 1:-1]
                  + after[..., 1:-1, :-2] + after[..., 1:-1, 2:]) / 4
    hole = ~known[..., 1:-1, 1:-1]
    residual = (inner - neighbours)[hole].abs()  # the fill's fixed sweeps leave it near, not at, 0
    assert residual.mean() < 2e-3 and residual.max() < 0.02
    direct = Generator(dataclasses.replace(RESIDUAL, bg_head="direct"))
    with pytest.raises(ValueError, match="residual background head"):
        direct.use_background("fill")
    with pytest.raises(ValueError, match="learned, fill"):
        g.use_background("telea")


def _box_mean(x: np.ndarray, side: int) -> np.ndarray:
    """(..., H, W) -> the mean over each pixel's side x side window, counting only pixels inside the image
    (numpy, summed-area tables)."""
    r = side // 2
    pad = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(r + 1, r), (r + 1, r)])
    ones = np.pad(np.ones(x.shape[-2:]), [(r + 1, r), (r + 1, r)])
    area, count = pad.cumsum(-1).cumsum(-2), ones.cumsum(-1).cumsum(-2)

    def window(t: np.ndarray) -> np.ndarray:
        return t[..., side:, side:] - t[..., :-side, side:] - t[..., side:, :-side] + t[..., :-side, :-side]

    return window(area) / window(count)


@pytest.mark.parametrize("side", [1, 3, 5, 9])
def test_box_mean_is_the_mean_over_the_window_inside_the_image(side):
    x = torch.randn(2, 3, 12, 10, generator=torch.Generator().manual_seed(side))
    np.testing.assert_allclose(box_mean(x, side).numpy(), _box_mean(x.double().numpy(), side), atol=1e-5)
    with pytest.raises(ValueError, match="odd"):
        box_mean(x, side + 1)


def test_tsf_detail_takes_the_box_mean_out_of_the_transfer_residual_only():
    """tsf_detail: the TSF colour is the base plus the head's residual less its box mean (checked against
    a numpy box mean), so a residual that is constant over the box changes nothing; SID is untouched."""
    torch.manual_seed(0)
    plain = Generator(RESIDUAL)
    detail = Generator(dataclasses.replace(RESIDUAL, tsf_detail=5))
    with torch.no_grad():
        for stream in (plain.tsf, plain.sid):
            stream.color_head[0].weight.normal_(0.0, 0.01)  # a trained head's residual
    detail.load_state_dict(plain.state_dict())
    residual = {}
    plain.tsf.color_head.register_forward_hook(lambda m, a, out: residual.update(r=out.detach()))
    src, bg_mask, src_cond, tgt_cond, t = inputs()
    with torch.no_grad():
        a, b = plain(src, bg_mask, src_cond, tgt_cond, t), detail(src, bg_mask, src_cond, tgt_cond, t)
    r = residual["r"].numpy()
    assert np.abs(r).mean() > 0.02
    inside = ((a.tgt_color.abs() < 0.999) & (b.tgt_color.abs() < 0.999)).numpy()  # neither clipped
    removed = (a.tgt_color - b.tgt_color).numpy()
    np.testing.assert_allclose(removed[inside], _box_mean(r, 5)[inside], atol=1e-5)
    torch.testing.assert_close(a.src_color, b.src_color)
    with pytest.raises(ValueError, match="tsf_detail"):
        NetOptions(image_size=SIZE, color_head="residual", tsf_detail=4)
    with pytest.raises(ValueError, match="tsf_detail"):
        NetOptions(image_size=SIZE, tsf_detail=5)  # direct heads have no residual


@pytest.mark.parametrize(("choice", "trained_on", "applied_to", "residual", "mode"), [
    ("auto", "synthetic", "footage", True, "fill"),  # the synthetic set's stream on real footage
    ("auto", "synthetic", "synthetic", True, "learned"),  # on data like its training data
    ("auto", "footage", "footage", True, "learned"),  # a model trained on real videos
    ("auto", "unknown", "footage", True, "learned"),  # a checkpoint from before this was recorded
    ("auto", "synthetic", "unknown", True, "learned"),
    ("auto", "synthetic", "footage", False, "learned"),  # a direct head has no base to fall back on
    ("learned", "synthetic", "footage", True, "learned"),  # asked for: as asked
    ("fill", "footage", "synthetic", True, "fill"),
])
def test_auto_background_is_the_fill_only_for_a_synthetic_set_model_on_footage(choice, trained_on, applied_to,
                                                                               residual, mode):
    assert resolve_background(choice, trained_on, applied_to, residual) == mode


def test_an_unknown_background_choice_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, learned, fill"):
        resolve_background("telea", "synthetic", "footage", True)


def test_residual_heads_need_their_priors_and_bad_head_names_are_refused():
    with pytest.raises(ValueError, match="color_head"):
        NetOptions(image_size=SIZE, color_head="tanh")
    with pytest.raises(ValueError, match="bg_head"):
        NetOptions(image_size=SIZE, bg_head="telea")
    g = Generator(RESIDUAL)
    with pytest.raises(ValueError, match="prior"):
        g.tsf(torch.zeros(1, 7, SIZE, SIZE))
