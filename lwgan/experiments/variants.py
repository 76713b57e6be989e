"""Every experiment of the paper "Liquid Warping GAN: An Exploratory Analysis" (section 3 and Table 1) as
a named variant: a set of `params.yaml` overrides on top of the baseline, at a scale.

A variant is data. Its overrides are absolute values (``train.gp_weight: 10``) or multiples of the
baseline's value at the same scale (``train.lambda_rec: Times(1.5)``: 10 -> 15 with the shipped params), so
that "λ_rec × 1.5" stays true whatever the baseline is. `resolve` turns a variant into absolute values given
the baseline's params.

Scales: ``default`` adds nothing (the workspace's `params.yaml` as it is: out of the box the CPU-sized
configuration); ``paper`` is the paper's configuration (256², base width 64, 6 residual blocks, 4 D layers,
5 + 25 epochs), the same set README "Training LWGAN" gives as one command.

How Table 1's columns map onto params:
    SN                         train.spectral_norm
    GP weight                  train.gp_weight
    TTUR (η_G, η_D, η_F)       train.lr_g, train.lr_d, train.final_lr: η_F is, by the table's footnote, the
                               "final learning rate with linear decay over 15 epochs", the rate both
                               optimisers decay to (the original's schedule decays G and D alike); "-" keeps
                               the baseline's final rate (2e-6) and decay.
    "over 15 epochs"           train.epochs_decay = 15 of the baseline's 25 decay epochs at paper scale; the
                               same share (0.6 × epochs_decay) at any other scale. The constant epochs stay.
    λ_rec = 15                 train.lambda_rec = 1.5 × the baseline's (10 in the paper)

Every variant also sets ``tracking.variant`` to its name, which tags every MLflow run of the experiment with
``lwgan.variant`` and is a parameter of the train and evaluate stages, so that each variant (the baseline
too) trains and evaluates in its own experiment while the data stages are shared.
"""

from __future__ import annotations

import dataclasses
import decimal
import types
from collections.abc import Mapping
from typing import Any

from lwgan.errors import UserError

VARIANT_KEY = "tracking.variant"


@dataclasses.dataclass(frozen=True)
class Times:
    """An override relative to the baseline: the baseline's value at the same scale times `factor`."""

    factor: float


Override = bool | int | float | Times


@dataclasses.dataclass(frozen=True)
class Variant:
    """One experiment of the paper.

    name: the variant's name (``tracking.variant``, the MLflow tag ``lwgan.variant``, the DVC experiment).
    section: where the paper describes it. summary: one line of what it changes.
    overrides: dotted params keys -> absolute values or `Times` (empty for the baseline).
    paper_delta: the changes of the final losses the paper reports against its baseline, in per cent
        ({"L_face": -12.8, ...}), where it gives numbers; a reference beside ours, on iPER.
    """

    name: str
    section: str
    summary: str
    overrides: Mapping[str, Override]
    paper_delta: Mapping[str, float] = dataclasses.field(default_factory=dict)


def _variant(name: str, section: str, summary: str, overrides: Mapping[str, Override],
             paper_delta: Mapping[str, float] | None = None) -> Variant:
    return Variant(name, section, summary, types.MappingProxyType(dict(overrides)),
                   types.MappingProxyType(dict(paper_delta or {})))


# The ensembles' shared TTUR: η_G 4e-4, η_D 1e-4, decaying to η_F 1e-5 over 15 (of 25) epochs.
_FAST_G = {"train.lr_g": 4e-4, "train.lr_d": 1e-4, "train.final_lr": 1e-5, "train.epochs_decay": Times(0.6)}

_ALL = (
    _variant("baseline", "3", "the original LWGAN's objective and optimiser (Adam 2e-4 for G and D, "
             "λ_rec 10, λ_face 5); every other variant changes only the keys it lists", {}),
    _variant("label_smoothing", "3.1", "one-sided label smoothing: D's target for real images 0.9",
             {"train.real_target": 0.9}),
    _variant("gp10", "3.2", "gradient penalty, weight 10", {"train.gp_weight": 10.0},
             {"L_tsf": -15.0, "L_face": -13.0}),
    _variant("gp2", "3.2", "gradient penalty, weight 2", {"train.gp_weight": 2.0}),
    _variant("sn", "3.3", "spectral normalisation on every discriminator convolution",
             {"train.spectral_norm": True}),
    _variant("ttur_1e-4_4e-4", "3.4", "TTUR: η_G 1e-4, η_D 4e-4 (D learns four times faster)",
             {"train.lr_g": 1e-4, "train.lr_d": 4e-4}, {"L_tsf": -22.5, "L_face": -3.0}),
    _variant("ttur_4e-4_1e-4", "3.4", "TTUR: η_G 4e-4, η_D 1e-4 (G learns four times faster)",
             {"train.lr_g": 4e-4, "train.lr_d": 1e-4}),
    _variant("rec_x1.5", "3.5", "λ_rec × 1.5 (10 -> 15)", {"train.lambda_rec": Times(1.5)}),
    _variant("face_x2", "3.5", "λ_face × 2 (5 -> 10)", {"train.lambda_face": Times(2.0)}),
    _variant("E1", "3.6, Table 1", "GP 2 with TTUR (η_G 1e-4, η_D 3e-4), the baseline's decay",
             {"train.gp_weight": 2.0, "train.lr_g": 1e-4, "train.lr_d": 3e-4},
             {"L_face": -12.80, "L_tsf": -5.75, "L_rec": -16.54}),
    _variant("E2", "3.6, Table 1", "TTUR (η_G 4e-4, η_D 1e-4) decaying to η_F 1e-5 over 15 epochs", _FAST_G,
             {"L_face": -2.03, "L_tsf": -2.15, "L_rec": -8.66}),
    _variant("E3", "3.6, Table 1", "SN with E2's TTUR and decay, λ_rec 15",
             {"train.spectral_norm": True, **_FAST_G, "train.lambda_rec": Times(1.5)},
             {"L_face": 0.93, "L_tsf": -1.25, "L_rec": 32.28}),
    _variant("E4", "3.6, Table 1", "E2's TTUR and decay, λ_rec 15, no stabiliser",
             {**_FAST_G, "train.lambda_rec": Times(1.5)},
             {"L_face": -3.37, "L_tsf": -2.49, "L_rec": 17.32}),
)
VARIANTS: Mapping[str, Variant] = types.MappingProxyType({v.name: v for v in _ALL})
VARIANT_NAMES: tuple[str, ...] = tuple(VARIANTS)
BASELINE = "baseline"

SCALES: Mapping[str, Mapping[str, Any]] = types.MappingProxyType({
    "default": types.MappingProxyType({}),
    "paper": types.MappingProxyType({
        "train.image_size": 256, "train.base_width": 64, "train.res_blocks": 6, "train.d_layers": 4,
        "train.epochs_constant": 5.0, "train.epochs_decay": 25.0, "train.workers": 8, "train.log_every": 20,
        "train.checkpoint_every": 2000, "train.sample_every": 2000,
    }),
})


class VariantError(UserError, ValueError):
    """An unknown variant or scale name, or a baseline value a relative override cannot use."""


def get(name: str) -> Variant:
    """The variant called `name`; VariantError listing the known names otherwise."""
    if name not in VARIANTS:
        raise VariantError(f"unknown variant {name!r}; known variants: {', '.join(VARIANT_NAMES)}")
    return VARIANTS[name]


def scale(name: str) -> Mapping[str, Any]:
    """The params overrides of a scale ('default' or 'paper')."""
    if name not in SCALES:
        raise VariantError(f"unknown scale {name!r}; known scales: {', '.join(SCALES)}")
    return SCALES[name]


def _clean(value: float) -> float:
    # 25 x 0.6 is 15.000000000000002 in binary; twelve significant digits is exact enough for any param
    return float(f"{value:.12g}")


def resolve(variant: Variant, base: Mapping[str, Any]) -> dict[str, Any]:
    """The variant's overrides as absolute values; `base` maps dotted keys to the baseline's values at the
    same scale (numbers, or their text as MLflow stores params: "10.0")."""
    out: dict[str, Any] = {}
    for key, value in variant.overrides.items():
        if isinstance(value, Times):
            if key not in base:
                raise VariantError(f"variant {variant.name}: {key} is relative to the baseline's value, "
                                   "which is not given")
            try:
                out[key] = _clean(float(base[key]) * value.factor)
            except (TypeError, ValueError):
                raise VariantError(f"variant {variant.name}: {key} is relative to the baseline's value, got "
                                   f"{base[key]!r}, not a number") from None
        else:
            out[key] = value
    return out


def format_value(value: Any) -> str:
    """A value as text that DVC's ``-S`` and lwgan's params loader both read back unchanged: true / false,
    integers, and floats in positional notation (0.0001, 15)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format(decimal.Decimal(repr(_clean(value))), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def experiment_name(variant: str, scale_name: str, suffix: str = "") -> str:
    """The DVC experiment's name: the variant, ``-paper`` at paper scale, ``-<suffix>`` when given."""
    parts = [variant] + ([scale_name] if scale_name != "default" else []) + ([suffix] if suffix else [])
    return "-".join(parts)


def set_params(variant: Variant, scale_name: str, base: Mapping[str, Any]) -> dict[str, Any]:
    """Every params override of one experiment, in order: the variant's name, the scale, the variant.
    `base` is the workspace's params with the scale applied (relative overrides multiply its values)."""
    return {VARIANT_KEY: variant.name, **scale(scale_name), **resolve(variant, base)}


def copy_paths() -> list[str]:
    """``-C`` the pretrained networks' folder (DVC copies a file only into a folder that exists, and
    data/weights/ is git-ignored, so the folder goes whole)."""
    from lwgan.weights import WEIGHTS_DIR

    return ["-C", WEIGHTS_DIR.as_posix()]


def dvc_command(variant: Variant, scale_name: str, base: Mapping[str, Any], queue: bool = False,
                suffix: str = "") -> list[str]:
    """``dvc exp run [--queue] -n NAME -S key=value ...`` for one variant, as an argument list. A queued
    experiment runs in a temporary copy of the repository without git-ignored files, so the pretrained
    networks (`lwgan.weights`, made by `make weights`) are copied in with ``-C``."""
    args = ["dvc", "exp", "run"] + (["--queue", *copy_paths()] if queue else [])
    args += ["-n", experiment_name(variant.name, scale_name, suffix)]
    for key, value in set_params(variant, scale_name, base).items():
        args += ["-S", f"{key}={format_value(value)}"]
    return args
