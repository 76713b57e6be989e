"""Personalisation: a short fine-tune of G on the one photo of the person before synthesis, so that the
details of this person's appearance (prints, face) survive better than in the general model.

Each photo gives two pairs with a ground truth: the identity pair (the photo re-posed to itself) and the
mirrored pair (the photo as source, its mirror image as target: the mirrored record is exactly the
mirrored geometry, so T is exact and the mirror image is the true output). G is trained on both with the
checkpoint's own objective and loss weights (`lwgan.train.objective`): reconstruction, perceptual, face,
attention terms and the adversarial term against the checkpoint's D, which stays frozen. The feature
networks are the ones the checkpoint was trained with (`train.perceptual_net` / `vgg_weights`,
`train.face_net` / `face_weights`), under the training's rule: a missing network is an error unless the
checkpoint trained with `train.substitute_nets`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import torch

from lwgan.apps.synthesis import Source, Synthesizer
from lwgan.correspond.maps import Correspondence, face_keypoints, face_regressor
from lwgan.nets import PatchDiscriminator
from lwgan.nets.build import CheckpointError, net_options
from lwgan.progress import ProgressLog
from lwgan.train.objective import Batch, Objective, feature_losses
from lwgan.train.train import loss_weights
from lwgan.warp.flow import flow, resize_flow

log = logging.getLogger(__name__)


def mirrored(record: Correspondence) -> Correspondence:
    """The record of the mirror image: maps flipped left-right, x -> -x, head box (x0, x1) -> (-x1, -x0)."""
    box = record.head_box
    return Correspondence(record.face_index.flip(2), record.bary.flip(2),
                          record.verts * torch.tensor([-1.0, 1.0, 1.0]), record.cond.flip(3),
                          torch.stack((-box[:, 2], box[:, 1], -box[:, 0], box[:, 3]), dim=1))


def self_pairs(synth: Synthesizer, source: Source) -> Batch:
    """The identity and the mirrored pair of a source photo, as one batch of 2."""
    rec, mirror = source.record, mirrored(source.record)
    size = (synth.size, synth.size)
    t = [resize_flow(flow(r.face_index, r.bary, rec.verts, synth.faces), size) for r in (rec, mirror)]
    face_kp = [face_keypoints(r.verts, face_regressor(synth.body)) for r in (rec, mirror)]  # (1, 5, 3) each
    img, cond = source.img, source.cond
    return Batch(src_img=img.expand(2, -1, -1, -1), tgt_img=torch.cat((img, img.flip(3))),
                 src_cond=cond.expand(2, -1, -1, -1), tgt_cond=torch.cat((cond, cond.flip(3))),
                 flow=torch.cat(t).to(synth.device),
                 tgt_head_box=torch.cat((rec.head_box, mirror.head_box)).to(synth.device),
                 tgt_face_kp=torch.cat(face_kp).to(synth.device),
                 src_person=None if source.person is None else source.person.expand(2, -1, -1, -1))


@dataclasses.dataclass(frozen=True)
class Personalized:
    """history: every weighted term (and the total, "L_G") per step; feature_nets: what the perceptual
    and face terms ran on (`lwgan.nets.pretrained.FeatureNetInfo.note`)."""

    history: dict[str, list[float]]
    feature_nets: dict[str, str]


def personalize(synth: Synthesizer, sources: Sequence[Source], steps: int, lr: float = 1e-4,
                background: bool = False) -> Personalized:
    """Fine-tune `synth`'s G in place for `steps` Adam steps on the self pairs of every source photo
    (module docstring), all in one batch. background: fine-tune the background stream too (by default it
    stays as trained: the self pairs show it nothing of what lies behind the person, and the mirrored one
    teaches it the mirrored person, which it then paints into the hole)."""
    if steps < 0 or lr <= 0:
        raise ValueError(f"personalisation needs steps >= 0 and lr > 0, got {steps} and {lr}")
    if background and synth.background == "fill":
        raise ValueError("tuning the background stream needs a Synthesizer whose background is 'learned': "
                         "with 'fill' the stream is not run")
    history: dict[str, list[float]] = {}
    if steps == 0:
        return Personalized(history, {})
    train = synth.train
    discriminator = PatchDiscriminator(net_options(train))
    try:
        if synth.discriminator_state is None:
            raise KeyError("discriminator")
        discriminator.load_state_dict(synth.discriminator_state)
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {synth.checkpoint} has no usable discriminator for "
                                         f"personalisation: {err}") from err
    discriminator.to(synth.device).eval().requires_grad_(False)
    perceptual, face, infos = feature_losses(train)
    notes = {info.kind: info.note for info in infos}
    objective = Objective(loss_weights(train), synth.size, perceptual, face).to(synth.device)
    pairs = [self_pairs(synth, s) for s in sources]
    batch = Batch(**{f.name: torch.cat([getattr(p, f.name) for p in pairs])
                     for f in dataclasses.fields(Batch) if getattr(pairs[0], f.name) is not None})
    generator = synth.generator.train()
    kept = [] if background else [p for p in generator.bg.parameters() if p.requires_grad]
    for p in kept:
        p.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in generator.parameters() if p.requires_grad], lr=lr,
                                 betas=train.betas_g)
    progress = ProgressLog("personalize", "steps")
    try:
        for step in range(steps):
            loss = objective.generator_loss(objective.generate(generator, batch), batch, discriminator)
            if not torch.isfinite(loss.value):
                raise FloatingPointError(f"personalisation loss became non-finite at step {step}; lower "
                                         f"--personalize-lr (was {lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.value.backward()
            optimizer.step()
            history.setdefault("L_G", []).append(float(loss.value.detach()))
            for name, value in loss.terms.items():
                history.setdefault(name, []).append(float(value))
            progress(step + 1, steps, extra=f"L_G {history['L_G'][-1]:.3f}")
    finally:
        for p in kept:
            p.requires_grad_(True)
        generator.eval()
    log.info("personalised G in %d steps: L_G %.3f -> %.3f", steps, history["L_G"][0], history["L_G"][-1])
    return Personalized(history, notes)
