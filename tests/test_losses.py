"""LWGAN's losses: adversarial (+ label smoothing), gradient penalty, image, face and attention terms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_nets import SIZE, SMALL, inputs

from lwgan.losses import (
    FaceLoss,
    LSGANLabels,
    PerceptualLoss,
    attention_loss,
    attention_target,
    crop_boxes,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    gram_matrix,
    perceptual_loss,
    reconstruction_loss,
    style_loss,
    total_variation,
)
from lwgan.losses.face import CHIP_SCALE, EYE_ROW, aligned_crops
from lwgan.nets import Generator, PatchDiscriminator, load_feature_net


def scores(value: float, batch: int = 2) -> torch.Tensor:
    return torch.full((batch, 1, 2, 2), value)


# ------------------------------------------------------------------------------------------ adversarial


def test_lsgan_losses_use_the_original_targets():
    d = discriminator_loss(scores(0.5), scores(-0.2))
    assert d.value.item() == pytest.approx((0.5 - 1) ** 2 + (-0.2 + 1) ** 2)
    assert d.stats["d_real"].item() == pytest.approx(0.5) and d.stats["d_fake"].item() == pytest.approx(-0.2)
    g = generator_loss(scores(-0.2))
    assert g.value.item() == pytest.approx(0.04)  # G pushes fakes towards 0, midway between -1 and +1


def test_one_sided_label_smoothing_moves_only_the_real_target():
    plain = discriminator_loss(scores(0.5), scores(-0.2))
    smooth = discriminator_loss(scores(0.5), scores(-0.2), real_target=0.9)
    assert smooth.stats["loss_d_real"].item() == pytest.approx((0.5 - 0.9) ** 2)
    assert smooth.stats["loss_d_fake"].item() == pytest.approx(plain.stats["loss_d_fake"].item())
    assert discriminator_loss(scores(0.9), scores(-1.0), real_target=0.9).value.item() == pytest.approx(0)


def test_textbook_lsgan_labels_and_bad_smoothing():
    labels = LSGANLabels(real=1.0, fake=0.0, generator=1.0)
    assert discriminator_loss(scores(1.0), scores(0.0), labels).value.item() == 0
    assert generator_loss(scores(0.25), labels).value.item() == pytest.approx(0.5625)
    with pytest.raises(ValueError, match="real_target"):
        discriminator_loss(scores(0.5), scores(0.5), real_target=1.5)


# ---------------------------------------------------------------------------------------- penalty


def test_gradient_penalty_of_a_linear_critic_is_known():
    torch.manual_seed(0)
    w = torch.randn(3, 8, 8) * 0.1
    critic_calls = []

    def critic(image, cond):  # D(x, c) = <w, x> + sum(c): gradient w for every sample and alpha
        critic_calls.append(image.shape)
        return ((image * w).sum(dim=(1, 2, 3)) + cond.sum(dim=(1, 2, 3)))[:, None, None, None]

    real, fake, cond = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8), torch.rand(4, 4, 8, 8)
    gp = gradient_penalty(critic, real, fake, cond, weight=10.0)
    norm = w.norm().item()
    assert gp.stats["grad_norm"].item() == pytest.approx(norm, rel=1e-5)
    assert gp.stats["gp"].item() == pytest.approx((norm - 1) ** 2, rel=1e-5)
    assert gp.value.item() == pytest.approx(10 * (norm - 1) ** 2, rel=1e-5)
    off = gradient_penalty(critic, real, fake, cond, weight=0.0)
    assert off.value.item() == 0 and not off.stats and len(critic_calls) == 1  # weight 0: no D pass


def test_gradient_penalty_backpropagates_to_the_critic_correctly():
    torch.manual_seed(0)
    real = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    fake = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    cond = torch.rand(2, 4, 6, 6, dtype=torch.float64)
    kernel = torch.randn(1, 7, 3, 3, dtype=torch.float64, requires_grad=True)

    def penalty(k: torch.Tensor) -> torch.Tensor:
        def critic(image, c):  # a nonlinear conditional patch critic
            return torch.tanh(F.conv2d(torch.cat((image, c), 1), k, padding=1)) ** 2

        rng = torch.Generator().manual_seed(1)  # the same alpha on every call
        return gradient_penalty(critic, real, fake, cond, weight=1.0, generator=rng).value

    # compares the create_graph gradient with finite differences of the penalty itself
    assert torch.autograd.gradcheck(penalty, (kernel,), eps=1e-6, atol=1e-5)


def test_gradient_penalty_through_the_spectral_norm_discriminator():
    from lwgan.nets import NetOptions

    d = PatchDiscriminator(NetOptions(base_width=8, image_size=SIZE, spectral_norm_d=True))
    real, _, cond, _, _ = inputs()
    gp = gradient_penalty(d, real, torch.zeros_like(real), cond, weight=10.0)
    gp.value.backward()
    weights = {n: p.grad for n, p in d.named_parameters() if n.endswith("weight.original")}
    assert len(weights) == 6  # every conv's weight reaches the penalty (the last bias cannot)
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in weights.values())


# ---------------------------------------------------------------------------------------- image losses


def test_reconstruction_is_pixel_l1():
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert reconstruction_loss(a, b).value.item() == pytest.approx(F.l1_loss(a, b).item())


def test_body_weighted_reconstruction_counts_body_pixels_more():
    """`train.tsf_l1_body`: a weighted mean written out in numpy (body pixels `w` times, the background
    once, divided by the pixel count, not renormalised), soft masks weighted in between; 1 is the plain
    L1."""
    rng = np.random.default_rng(3)
    fake, real = rng.uniform(-1, 1, (2, 3, 5, 6)), rng.uniform(-1, 1, (2, 3, 5, 6))
    body = rng.uniform(0, 1, (2, 1, 5, 6)).round(1)
    for weight in (0.0, 1.0, 3.0):
        expected = (np.abs(fake - real) * (1 + (weight - 1) * body)).sum() / fake.size
        got = reconstruction_loss(*(torch.tensor(x, dtype=torch.float32) for x in (fake, real, body)), weight)
        assert got.value.item() == pytest.approx(expected, rel=1e-6)
    plain = reconstruction_loss(torch.tensor(fake), torch.tensor(real)).value.item()
    assert plain == pytest.approx(np.abs(fake - real).mean(), rel=1e-6)


def test_perceptual_layer_weights():
    real = [torch.zeros(1, 2, 4, 4) for _ in range(5)]
    for layer, weight in enumerate((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)):
        fake = [f + (1.0 if i == layer else 0.0) for i, f in enumerate(real)]
        term = perceptual_loss(fake, real)
        assert term.value.item() == pytest.approx(weight)
        assert term.stats[("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")[layer]].item() == 1.0


def test_relative_perceptual_distance_is_a_weighted_mean_of_scale_free_layer_distances():
    gen = torch.Generator().manual_seed(0)
    real = [torch.randn(2, 3, 4, 4, generator=gen) * scale for scale in (0.1, 1.0, 10.0, 100.0, 3.0)]
    # fake = 1.5 x real everywhere: every layer is half its own magnitude away, whatever its scale
    term = perceptual_loss([1.5 * r for r in real], real, norm="relative")
    assert term.value.item() == pytest.approx(0.5, rel=1e-4)
    assert all(v.item() == pytest.approx(0.5, rel=1e-4) for v in term.stats.values())
    # one layer off by its magnitude, the others equal: that layer's weight over the sum of weights
    fake = [r.clone() for r in real]
    fake[3] = real[3] + real[3].abs().flatten(1).mean(dim=1)[:, None, None, None]  # each sample's magnitude
    weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    assert perceptual_loss(fake, real, norm="relative").value.item() == pytest.approx(
        weights[3] / sum(weights), rel=1e-4)
    # per sample: a batch's distance is the mean of its samples' (what DDP's ranks average)
    halves = [perceptual_loss([1.5 * r[i : i + 1] for r in real], [r[i : i + 1] for r in real],
                              norm="relative").value for i in range(2)]
    fake = [r + torch.randn(r.shape, generator=gen) * r.abs().mean() for r in real]
    whole = perceptual_loss(fake, real, norm="relative").value
    parts = [perceptual_loss([f[i : i + 1] for f in fake], [r[i : i + 1] for r in real],
                             norm="relative").value for i in range(2)]
    assert whole.item() == pytest.approx(0.5 * (parts[0] + parts[1]).item(), rel=1e-5)
    assert all(h.item() == pytest.approx(0.5, rel=1e-4) for h in halves)
    with pytest.raises(ValueError, match="'other'"):
        PerceptualLoss(torch.nn.Identity(), norm="other")


def test_gram_matrix_and_style():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # two channels, two pixels
    assert torch.allclose(gram_matrix(f), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2)
    assert style_loss([f], [f]).value.item() == 0
    assert style_loss([f], [2 * f]).value.item() == pytest.approx((3 * torch.tensor([5.0, 11, 11, 25]) / 2)
                                                                  .mean().item())


@pytest.fixture(scope="module")
def vgg():
    return load_feature_net("vgg19", None, substitute=True)[0]


@pytest.fixture(scope="module")
def sphere():
    return load_feature_net("sphere20a", None, substitute=True)[0]


def test_perceptual_module_compares_vgg_features_and_trains_only_the_fake(vgg):
    loss = PerceptualLoss(vgg)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    same, style = loss(real, real, with_style=True)
    assert same.value.item() == 0 and style.value.item() == 0
    fake = (real + 0.1 * torch.randn_like(real)).requires_grad_(True)
    target = real.clone().requires_grad_(True)
    term, none = loss(fake, target)
    assert none is None and term.value.item() > 0
    term.value.backward()
    assert fake.grad.abs().sum() > 0 and target.grad is None


WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "weights"  # `make weights`


def _photo_pair(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-image's astronaut at size² in [-1, 1], and a blurred, darker copy of it."""
    from skimage import data

    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    real = F.interpolate(image, size=(size, size), mode="area")
    fake = 0.8 * F.avg_pool2d(real, 3, stride=1, padding=1, count_include_pad=False)
    return fake, real


@pytest.mark.parametrize("network", ["vgg16", "dlib"])
def test_feature_networks_in_bfloat16_give_the_float32_loss_and_gradient(network):
    """train.feature_bf16: the frozen networks under bfloat16 autocast, the differences in float32."""
    net = load_feature_net(network, WEIGHTS / ("vgg16.pth" if network == "vgg16" else "dlib_face.pth"))[0]
    fake, real = _photo_pair(64)
    box = torch.tensor([[-0.25, -0.95, 0.05, -0.55]])  # the astronaut's head in NDC
    grads, values = [], []
    for bf16 in (False, True):
        x = fake.clone().requires_grad_(True)
        if network == "vgg16":
            term = PerceptualLoss(net, norm="relative", bf16=bf16)(x, real)[0]
        else:
            term = FaceLoss(net, bf16=bf16)(x, real, box)
        term.value.backward()
        assert term.value.dtype == torch.float32
        values.append(term.value.item())
        grads.append(x.grad.flatten())
    assert values[0] > 0 and abs(values[1] - values[0]) < 0.02 * values[0], values
    assert float(F.cosine_similarity(grads[0], grads[1], dim=0)) > 0.98


# ---------------------------------------------------------------------------------------- face


def test_crop_boxes_resamples_exactly():
    images = torch.rand(2, 3, 16, 12)
    full = torch.tensor([[-1.0, -1.0, 1.0, 1.0]] * 2)
    assert torch.allclose(crop_boxes(images, full, (16, 12)), images, atol=1e-6)
    left_top = torch.tensor([[-1.0, -1.0, 0.0, 0.0]] * 2)
    assert torch.allclose(crop_boxes(images, left_top, (8, 6)), images[..., :8, :6], atol=1e-6)
    big = torch.rand(1, 3, 224, 192)
    half = crop_boxes(big, full[:1], (112, 96))  # 2:1 bilinear at pixel corners = 2x2 means
    assert torch.allclose(half, F.avg_pool2d(big, 2), atol=1e-5)


def test_face_loss_on_head_crops(sphere):
    loss = FaceLoss(sphere)
    real = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    box = torch.tensor([[-0.3, -0.9, 0.3, -0.3]] * 2)
    assert loss(real, real, box).value.item() == 0
    fake = (real.flip(-1)).requires_grad_(True)
    term = loss(fake, real, box)
    assert term.value.item() > 0 and set(term.stats) == {"stage1", "stage2", "stage3", "stage4", "fc5"}
    term.value.backward()
    assert fake.grad.abs().sum() > 0
    assert fake.grad[..., :21].abs().sum() == 0  # pixels left of the box (x0 = -0.3 is column 21.9)
    assert fake.grad[..., 23:, :].abs().sum() == 0  # and below it (y1 = -0.3 is row 21.9)


def dots(centres: list[tuple[float, float]], size: int = 96, sigma: float = 1.2) -> torch.Tensor:
    """(1, 1, size, size) image with a Gaussian dot at each NDC (x, y) centre (pixel centres at
    (i + 0.5) / size * 2 - 1, as lwgan.geometry)."""
    grid = (torch.arange(size) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(grid, grid, indexing="ij")
    image = torch.zeros(size, size)
    for cx, cy in centres:
        image += torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (sigma * 2 / size) ** 2))
    return image[None, None]


def centroid(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(x, y) pixel centroid (column, row) of `image` (h, w) where `mask`."""
    h, w = image.shape
    rows, cols = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    wgt = image * mask
    return torch.stack(((wgt * cols).sum() / wgt.sum(), (wgt * rows).sum() / wgt.sum()))


@pytest.mark.parametrize("degrees", [0.0, 20.0, -35.0])
def test_aligned_crops_level_the_eyes_at_the_template_row(degrees):
    """Two eye dots rotated by an angle about their midpoint: in the aligned crop they are level, at row
    EYE_ROW of the crop, symmetric about its centre column, and their distance keeps the crop's scale."""
    a = math.radians(degrees)
    mid, half = torch.tensor([0.1, -0.2]), 0.12
    direction = torch.tensor([math.cos(a), math.sin(a)])
    left, right = mid + half * direction, mid - half * direction  # the person's left eye on image right
    image = dots([tuple(left.tolist()), tuple(right.tolist())])
    box = torch.tensor([[mid[0] - 0.4, mid[1] - 0.4, mid[0] + 0.4, mid[1] + 0.4]])  # side 0.8 NDC
    kp = torch.zeros(1, 5, 3)
    kp[0, 1, :2], kp[0, 2, :2] = left, right
    crop = aligned_crops(image, box, kp, (60, 60))[0, 0]
    cols = torch.arange(60).float()[None, :].expand(60, 60)
    l_c, r_c = centroid(crop, cols >= 30), centroid(crop, cols < 30)
    assert abs(float(l_c[1] - r_c[1])) < 0.1  # level
    assert float(0.5 * (l_c[1] + r_c[1])) == pytest.approx(EYE_ROW * 60 - 0.5, abs=0.15)
    assert float(0.5 * (l_c[0] + r_c[0])) == pytest.approx(29.5, abs=0.15)
    side = CHIP_SCALE * 0.8  # NDC units covered by the crop
    assert float(l_c[0] - r_c[0]) == pytest.approx(2 * half / side * 60, rel=0.02)


def test_aligned_crops_fall_back_to_the_box_for_faces_not_seen_from_the_front():
    image = torch.rand(2, 3, 64, 64)
    box = torch.tensor([[-0.5, -0.5, 0.5, 0.5]] * 2)
    kp = torch.zeros(2, 5, 3)
    kp[0, 1, 0], kp[0, 2, 0] = -0.1, 0.1  # back view: the left eye on the image's left
    kp[1, 1, 0], kp[1, 2, 0] = 0.01, -0.01  # profile: the eyes nearly on top of each other
    crops = aligned_crops(image, box, kp, (32, 32))
    side = CHIP_SCALE
    square = crop_boxes(image, torch.tensor([[-side / 2, -side / 2, side / 2, side / 2]] * 2), (32, 32))
    assert torch.allclose(crops, square, atol=1e-5)


def test_face_loss_with_the_dlib_network_compares_aligned_crops():
    from lwgan.nets.dlib_face import FEATURE_NAMES, DlibFaceResNet

    net = load_feature_net("dlib", None, substitute=True)[0]
    assert isinstance(net, DlibFaceResNet)
    loss = FaceLoss(net)
    assert loss.size == (150, 150) and loss.names == FEATURE_NAMES
    real = torch.rand(1, 3, 64, 64) * 2 - 1
    box = torch.tensor([[-0.2, -0.9, 0.2, -0.5]])
    kp = torch.tensor([[[0.0, -0.7, 0], [0.06, -0.75, 0], [-0.06, -0.75, 0], [0.12, -0.72, 0],
                        [-0.12, -0.72, 0]]])
    assert loss(real, real, box, kp).value.item() == 0
    fake = real.clone()
    fake[..., 40:, :] = 0  # the body below the head: outside the crop, no change
    assert loss(fake, real, box, kp).value.item() == 0
    fake = real.clone().requires_grad_(True)
    term = loss(fake * 0.5, real, box, kp)
    assert term.value.item() > 0 and set(term.stats) == set(FEATURE_NAMES)
    term.value.backward()
    assert fake.grad[..., 40:, :].abs().sum() == 0 and fake.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------- masks


def test_attention_loss_is_binary_cross_entropy():
    a, t = torch.rand(2, 1, 8, 8) * 0.98 + 0.01, (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert attention_loss(a, t).value.item() == pytest.approx(F.binary_cross_entropy(a, t).item(), rel=1e-6)
    hard = attention_loss(torch.tensor([[[[0.0, 1.0]]]]), torch.tensor([[[[1.0, 0.0]]]]))
    assert hard.value.item() == pytest.approx(100.0)  # log clamped at -100, as torch's BCE


def test_attention_loss_gradient_is_finite_where_the_sigmoid_saturates():
    # float32 sigmoids reach exactly 0 and 1; a NaN gradient there once ended a default training run
    logits = torch.tensor([[[[-200.0, -20.0, 0.0, 20.0, 200.0]]]], requires_grad=True)
    a = torch.sigmoid(logits)
    assert a[0, 0, 0, 0] == 0.0 and a[0, 0, 0, -1] == 1.0
    loss = attention_loss(a, torch.tensor([[[[1.0, 1.0, 0.5, 0.0, 0.0]]]])).value
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx(F.binary_cross_entropy(a.detach(), torch.tensor(
        [[[[1.0, 1.0, 0.5, 0.0, 0.0]]]])).item(), rel=1e-6)


def test_gradient_penalty_gradient_is_finite_for_a_flat_critic():
    from lwgan.losses import interpolate, penalty_from_scores

    weight = torch.zeros(1, requires_grad=True)
    real, fake = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    mixed = interpolate(real, fake)
    scores = (mixed * weight).sum(dim=(1, 2, 3)).reshape(2, 1, 1, 1)  # zero input gradient
    penalty = penalty_from_scores(scores, mixed, 10.0)
    penalty.value.backward()
    assert penalty.value.item() == pytest.approx(10.0, rel=1e-5) and torch.isfinite(weight.grad).all()


def test_attention_target_is_the_eroded_background():
    cond = torch.zeros(1, 4, 12, 12)
    cond[:, 3] = 1.0
    cond[:, 3, 4:8, 4:8] = 0.0  # a 4x4 body
    target = attention_target(cond)
    assert target[0, 0, 3:9, 3:9].sum() == 0 and target.sum() == 144 - 36  # body grown by one pixel
    assert target[0, 0, 0, 0] == 1  # the image border is not eroded


def test_total_variation_of_a_step():
    a = torch.zeros(1, 1, 4, 5)
    a[..., 3:] = 1.0  # one vertical edge
    assert total_variation(a).value.item() == pytest.approx(1 / 4)  # 4 jumps over 4 x 4 differences


# ---------------------------------------------------------------------------------------- together


def test_the_combined_generator_loss_reaches_every_parameter(vgg, sphere):
    torch.manual_seed(0)
    g, d = Generator(SMALL), PatchDiscriminator(SMALL)
    src, bg_mask, src_cond, tgt_cond, t = inputs()
    tgt_real = src.roll(1, dims=-1)
    out = g(src, bg_mask, src_cond, tgt_cond, t)
    attention = torch.cat((out.src_attention, out.tgt_attention))
    mask_target = torch.cat((attention_target(src_cond), attention_target(tgt_cond)))
    heads = torch.tensor([[-0.3, -0.9, 0.3, -0.4]] * 2)
    terms = {
        "adv": generator_loss(d(out.tgt, tgt_cond)).value,
        "rec": 10 * reconstruction_loss(out.src_rec, src).value,
        "tsf": 10 * PerceptualLoss(vgg)(out.tgt, tgt_real)[0].value,
        "face": 5 * FaceLoss(sphere)(out.tgt, tgt_real, heads).value,
        "mask": attention_loss(attention, mask_target).value,
        "smooth": total_variation(attention).value,
    }
    assert all(torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    dead = [n for n, p in g.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead
    assert not any(p.requires_grad for p in [*vgg.parameters(), *sphere.parameters()])
