"""Cost of the pretrained feature networks on the CPU, and their share of a default training step.

    python benchmarks/features.py [--quick] [--repeats N] [--set SECTION.KEY=VALUE ...] [--device cuda]

Per network, ms for one batch of 4 at 64² and 256² (the default and the paper's training sizes):
  vgg16          the perceptual loss's network: forward + backward to the input (as for the fake image)
  dlib_face      the face loss's network on 150² aligned head crops: crop + forward + backward
  (vgg16_bf16, dlib_face_bf16: the same under bfloat16 autocast, as train.feature_bf16 runs them; null
   where the CPU has no bfloat16 instructions (cpu_native_bf16 false), since `auto` runs float32 there and
   emulated bfloat16 is slow: --emulated-bf16 times them anyway)
  lpips_alex     LPIPS v0.1 AlexNet (evaluation): forward of both images
  effnet_lite0   EfficientNet-Lite0 pooled features at 224² (evaluation): forward
step_ms / step_ms_without_feature_nets: one default training step (G forward, L_G, backward, Adam; D
forward, L_D, backward, Adam) on a batch of the default configuration (params.yaml's train section) with
the real networks, and with lambda_tsf = lambda_face = 0 (the networks not run);
feature_share = 1 - without / with (target <= 0.35); feature_bf16: whether the step ran the networks in
bfloat16 (`train.feature_bf16`, 'auto': where bfloat16 is native). Random inputs: the cost does not
depend on them.
feature_gmac: the multiply-accumulates of the two networks in one step (convolutions and linear layers,
counted from the shapes: the fake's forward and its backward to the input, the same count, and the
real's forward), cpu_gmac_per_s: this CPU's rate on a 2048^3 matrix product in the networks' dtype (the
best of 5), feature_share_floor: the share if the networks ran at that rate, with nothing else added:
    floor_ms = feature_gmac / cpu_gmac_per_s;  floor = floor_ms / (step_ms_without_feature_nets + floor_ms)
--device cuda measures the step (and the floor, at the GPU's rate: `gmac_per_s`) on the GPU, as the train
stage runs it there with `train.bf16` (G, D and their losses under bfloat16 autocast, channels_last); the
per-network figures stay the CPU's.
--set train.KEY=VALUE (repeatable) measures the step at another configuration, e.g. the paper's:
    --set train.image_size=256 --set train.base_width=64 --set train.res_blocks=6 --set train.d_layers=4
Needs the converted weights (`make weights`). The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from pathlib import Path

import torch

from lwgan import config
from lwgan.losses import FaceLoss
from lwgan.losses.terms import feature_autocast
from lwgan.metrics.efficientnet import load_efficientnet_lite0
from lwgan.metrics.lpips import load_lpips
from lwgan.nets import Generator, PatchDiscriminator, load_feature_net
from lwgan.nets.build import net_options
from lwgan.train.objective import Batch, Objective, feature_bf16, feature_losses
from lwgan.train.train import loss_weights

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "data" / "weights"
CPU = torch.device("cpu")


def timed(fn, repeats: int, least: bool = False, device: torch.device | None = None) -> float:
    """Median (or `least`) ms of `fn()` over `repeats` calls after one warm-up call; on a CUDA `device`
    each call is timed to the end of the work it queued."""
    def sync() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times) if least else sorted(times)[len(times) // 2]


def random_batch(batch: int, size: int, gen: torch.Generator) -> Batch:
    def img() -> torch.Tensor:
        return torch.rand(batch, 3, size, size, generator=gen) * 2 - 1

    def cond() -> torch.Tensor:
        c = torch.rand(batch, 4, size, size, generator=gen)
        c[:, 3] = (c[:, 3] > 0.5).float()
        return c

    kp = torch.tensor([[0.0, -0.7, 0.0], [0.06, -0.75, 0.0], [-0.06, -0.75, 0.0], [0.12, -0.72, 0.0],
                       [-0.12, -0.72, 0.0]]).expand(batch, 5, 3).contiguous()
    return Batch(src_img=img(), tgt_img=img(), src_cond=cond(), tgt_cond=cond(),
                 flow=torch.rand(batch, size, size, 2, generator=gen) * 2 - 1,
                 tgt_head_box=torch.tensor([[-0.2, -0.9, 0.2, -0.5]]).expand(batch, 4).contiguous(),
                 tgt_face_kp=kp)


def _vgg_step(vgg: torch.nn.Module, batch: Batch, bf16: bool = False) -> None:
    x = batch.tgt_img.clone().requires_grad_(True)
    with feature_autocast(x, bf16):
        features = vgg(x)
    sum(f.float().mean() for f in features).backward()


def _face_step(face: FaceLoss, batch: Batch, bf16: bool = False) -> None:
    x = batch.tgt_img.clone().requires_grad_(True)
    crops = face.crops(x, batch.tgt_head_box, batch.tgt_face_kp)
    with feature_autocast(x, bf16):
        features = face.net(crops)
    sum(f.float().mean() for f in features).backward()


@torch.no_grad()
def _lpips_step(lpips: torch.nn.Module, batch: Batch) -> None:
    lpips(batch.tgt_img, batch.src_img)


@torch.no_grad()
def _effnet_step(effnet: torch.nn.Module, batch: Batch) -> None:
    effnet.features(batch.tgt_img)


def network_costs(sizes: tuple[int, ...], repeats: int, bf16: bool) -> dict[str, float | None]:
    nets = {"vgg16": (_vgg_step, load_feature_net("vgg16", WEIGHTS / "vgg16.pth", param="vgg16")[0]),
            "dlib_face": (_face_step,
                          FaceLoss(load_feature_net("dlib", WEIGHTS / "dlib_face.pth", param="dlib")[0])),
            "lpips_alex": (_lpips_step,
                           load_lpips("alex", WEIGHTS / "alexnet.pth", WEIGHTS / "lpips_alex.pth")),
            "effnet_lite0": (_effnet_step, load_efficientnet_lite0(WEIGHTS / "efficientnet_lite0.pth"))}
    gen = torch.Generator().manual_seed(0)
    out: dict[str, float | None] = {}
    for size in sizes:
        batch = random_batch(4, size, gen)
        for name, (step, net) in nets.items():
            out[f"{name}_ms_{size}"] = round(timed(functools.partial(step, net, batch), repeats), 2)
            if step in (_vgg_step, _face_step):  # as training runs them with train.feature_bf16
                under = functools.partial(step, net, batch, True)
                out[f"{name}_bf16_ms_{size}"] = round(timed(under, repeats), 2) if bf16 else None
    return out


def _train_step(objective: Objective, generator: torch.nn.Module, discriminator: torch.nn.Module,
                opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, batch: Batch,
                fast: bool = False) -> None:
    """One G and one D update as `lwgan.train.train.train_step` makes them (`fast`: its bfloat16 autocast
    of G, D and their losses, CUDA with train.bf16)."""
    device = batch.tgt_img.device.type
    discriminator.requires_grad_(False)
    with torch.autocast(device, torch.bfloat16, enabled=fast):
        out = objective.generate(generator, batch)
        loss = objective.generator_loss(out, batch, discriminator)
    opt_g.zero_grad(set_to_none=True)
    loss.value.backward()
    opt_g.step()
    discriminator.requires_grad_(True)
    with torch.autocast(device, torch.bfloat16, enabled=fast):
        d_loss = objective.discriminator_loss(discriminator, batch.tgt_img, out.tgt, batch.tgt_cond)
    opt_d.zero_grad(set_to_none=True)
    d_loss.value.backward()
    opt_d.step()


def forward_macs(net: torch.nn.Module, inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward of `net` on `inputs` over its Conv2d and Linear layers."""
    total = 0

    def count(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total += out.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += out.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in net.modules()
             if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    try:
        with torch.no_grad():
            net(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def matmul_rate(dtype: torch.dtype, size: int = 2048, device: torch.device = CPU) -> float:
    """GMAC/s of this process on a size^3 matrix product in `dtype` on `device` (the best of 5 after a
    warm-up)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return size**3 / timed(lambda: a @ b, 5, least=True, device=device) / 1e6


def feature_floor(p: config.TrainParams, perceptual, face, step_without_ms: float,
                  device: torch.device = CPU) -> dict[str, float]:
    """The networks' arithmetic in one step at p's configuration and the share it would take at this
    device's matrix-product rate (module docstring)."""
    images = torch.zeros(p.batch_size, 3, p.image_size, p.image_size, device=device)
    macs = forward_macs(perceptual.vgg, images)
    if face is not None:
        macs += forward_macs(face.net, torch.zeros(p.batch_size, 3, *face.size, device=device))
    gmac = 3 * macs / 1e9  # the fake's forward and backward to the input, the real's forward
    rate = matmul_rate(torch.bfloat16 if perceptual.bf16 else torch.float32, device=device)
    floor_ms = gmac / rate * 1e3
    return {"feature_gmac": round(gmac, 2),
            ("cpu_gmac_per_s" if device.type == "cpu" else "gmac_per_s"): round(rate, 1),
            "feature_share_floor": round(floor_ms / (step_without_ms + floor_ms), 3)}


def step_cost(p: config.TrainParams, repeats: int,
              device: torch.device = CPU) -> dict[str, float]:
    """ms of one training step with and without the feature networks, at p's configuration, on `device`
    (on CUDA as the train stage runs it with train.bf16: autocast and channels_last)."""
    fast = device.type == "cuda" and p.bf16
    gen = torch.Generator().manual_seed(1)
    items = dataclasses.asdict(random_batch(p.batch_size, p.image_size, gen))
    batch = Batch.from_items({k: v for k, v in items.items() if v is not None}, device, channels_last=fast)
    perceptual, face, _ = feature_losses(dataclasses.replace(p, device=device.type))
    result = {}
    without = dataclasses.replace(loss_weights(p), tsf=0.0, face=0.0)
    for label, weights in (("", loss_weights(p)), ("_without_feature_nets", without)):
        torch.manual_seed(0)
        generator, discriminator = Generator(net_options(p)), PatchDiscriminator(net_options(p))
        objective = Objective(weights, p.image_size, perceptual, face)
        for module in (generator, discriminator, objective):
            module.to(device)
            if fast:
                module.to(memory_format=torch.channels_last)
        opt_g = torch.optim.Adam(generator.parameters(), lr=p.lr_g, betas=p.betas_g)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=p.lr_d, betas=p.betas_d)
        step = functools.partial(_train_step, objective, generator, discriminator, opt_g, opt_d, batch, fast)
        result[f"step_ms{label}"] = round(timed(step, repeats, device=device), 2)
    result["feature_share"] = round(1.0 - result["step_ms_without_feature_nets"] / result["step_ms"], 3)
    return {**result, **feature_floor(p, perceptual, face, result["step_ms_without_feature_nets"], device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="the step's configuration differs from params.yaml in these keys")
    parser.add_argument("--repeats", type=int, default=0, help="timed calls per figure (10; --quick: 3)")
    parser.add_argument("--emulated-bf16", action="store_true",
                        help="time the networks under bfloat16 also where this CPU only emulates it (slow: "
                             "VGG16 at 256² takes about a minute a call; by default they are null there)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the training step runs (the per-network figures are the CPU's)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch here")
    device = torch.device(args.device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    repeats = args.repeats or (3 if args.quick else 10)
    try:
        params = config.load(ROOT / "params.yaml", config.parse_assignments(args.overrides))
    except ValueError as err:
        parser.error(f"--set {err}")
    train = dataclasses.replace(params.train, vgg_weights=str(WEIGHTS / "vgg16.pth"),
                                face_weights=str(WEIGHTS / "dlib_face.pth"))
    train = dataclasses.replace(train, device=args.device)
    native = feature_bf16(dataclasses.replace(train, feature_bf16="auto", device="cpu"))
    costs = network_costs((64, 256), repeats, native or args.emulated_bf16) if not args.overrides else {}
    result = {"threads": torch.get_num_threads(), "batch": 4, **costs,
              "step_config": {k: getattr(train, k) for k in ("image_size", "batch_size", "base_width",
                                                              "res_blocks", "d_layers", "perceptual_net",
                                                              "face_net")},
              "device": args.device, "feature_bf16": feature_bf16(train), "cpu_native_bf16": native,
              **step_cost(train, repeats, device), "target_feature_share": 0.35}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
