"""Training learns: a tiny G with the real objective (VGG16 perceptual and dlib face losses, adversarial,
reconstruction, attention terms), trained on a few pairs of one real-cache video, ends clearly better than
the naive warp on those pairs (body L1 and LPIPS, the published metric on its own AlexNet weights), and
better than itself untrained. The references are independent of G: the warp alone (the source sampled by
`F.grid_sample` at T, over the source's OpenCV-inpainted background: the evaluate stage's naive reference)
and the source frame itself, which G must beat too. The caches are the default synthetic set's kind,
with a skirt and hanging hair where drawn: on such pairs the warp can be further from the target than the
untouched source frame (it drags the skirt with the legs), and G must learn what the warp cannot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _small import build_caches

from lwgan import config
from lwgan.evaluate.evaluate import naive_reference
from lwgan.geometry import ALIGN_CORNERS, OUTSIDE
from lwgan.metrics.image import masked_l1
from lwgan.metrics.lpips import load_lpips
from lwgan.nets import Generator, NetOptions, PatchDiscriminator
from lwgan.nets.masks import BACKGROUND_CHANNEL
from lwgan.train.objective import Batch, Objective, feature_losses
from lwgan.train.pairs import PairDataset, PairOptions
from lwgan.train.train import loss_weights

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "data" / "weights"
SIZE = 32  # the pairs are taken from 64^2 caches at half resolution, as train.image_size does
PAIRS = 4
STEPS = 40


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Batch:
    caches = build_caches(tmp_path_factory.mktemp("learning"), 64, frames_per_action=6)
    data = PairDataset(caches.frames, caches.maps, caches.smpl, caches.body,
                       PairOptions(image_size=SIZE, split="train", augment=False))
    source = int(data.sources[0][0])
    rows = data.targets[data.targets[:, 0] == 0, 1]
    rows = rows[rows != source]
    rows = rows[np.linspace(0, len(rows) - 1, PAIRS).round().astype(int)]
    items = [data.pair(data.videos[0], source, int(r)) for r in rows]
    return Batch.from_items(torch.utils.data.default_collate(items), torch.device("cpu"))


def scores(fake: torch.Tensor, batch: Batch, lpips) -> tuple[float, float]:
    body = 1.0 - batch.tgt_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
    with torch.no_grad():
        return float(masked_l1(fake, batch.tgt_img, body).mean()), float(lpips(fake, batch.tgt_img).mean())


def test_a_trained_generator_beats_the_warp_it_is_given(batch):
    torch.manual_seed(0)
    lpips = load_lpips("alex", WEIGHTS / "alexnet.pth", WEIGHTS / "lpips_alex.pth")
    train_params = config.TrainParams(image_size=SIZE)  # the default objective and feature networks
    perceptual, face, _ = feature_losses(train_params)
    objective = Objective(loss_weights(train_params), SIZE, perceptual, face)
    opts = NetOptions(base_width=8, res_blocks=1, image_size=SIZE, d_layers=2,
                      color_head=train_params.color_head, bg_head=train_params.bg_head,
                      bg_fill=train_params.bg_fill)
    generator, discriminator = Generator(opts), PatchDiscriminator(opts)
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))

    # the references: the source frame itself, and the warp (F.grid_sample, not lwgan's warp)
    source_l1, _ = scores(batch.src_img, batch, lpips)
    naive = naive_reference(batch)
    sampled = F.grid_sample(batch.src_img, batch.flow, align_corners=ALIGN_CORNERS)
    seen = (batch.flow[..., 0] > OUTSIDE / 2)[:, None]
    assert torch.allclose(torch.where(seen, naive, 0), torch.where(seen, sampled, 0), atol=1e-5)
    naive_l1, naive_lpips = scores(naive, batch, lpips)

    with torch.no_grad():
        untrained_l1, untrained_lpips = scores(objective.generate(generator, batch).tgt, batch, lpips)
    assert untrained_l1 < 1.25 * naive_l1  # residual heads: an untrained G starts at the warp, not noise

    for _ in range(STEPS):
        discriminator.requires_grad_(False)
        out = objective.generate(generator, batch)
        loss_g = objective.generator_loss(out, batch, discriminator)
        opt_g.zero_grad()
        loss_g.value.backward()
        opt_g.step()
        discriminator.requires_grad_(True)
        loss_d = objective.discriminator_loss(discriminator, batch.tgt_img, out.tgt, batch.tgt_cond)
        opt_d.zero_grad()
        loss_d.value.backward()
        opt_d.step()
    with torch.no_grad():
        trained_l1, trained_lpips = scores(objective.generate(generator, batch).tgt, batch, lpips)
    print(f"body L1: source {source_l1:.4f} naive {naive_l1:.4f} untrained {untrained_l1:.4f} "
          f"trained {trained_l1:.4f}; LPIPS: naive {naive_lpips:.4f} untrained {untrained_lpips:.4f} "
          f"trained {trained_lpips:.4f}")
    assert trained_l1 < 0.9 * min(naive_l1, untrained_l1, source_l1)
    assert trained_lpips < 0.9 * min(naive_lpips, untrained_lpips)
