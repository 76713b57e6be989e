"""Building the networks from a run's params, and the trained generator from a checkpoint file.

Train, evaluate and the apps all build G through here, so that using a trained model needs only the
networks, never the training loop. A checkpoint (`lwgan.train.checkpoint` writes it; its keys are listed
there) is plain data that `torch.load(..., weights_only=True)` reads; this module reads it and checks its
format and version.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lwgan import config
from lwgan.errors import UserError
from lwgan.nets.generator import Generator
from lwgan.nets.options import NetOptions

FORMAT = "lwgan.train.checkpoint"
VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"  # in the train stage's model folder


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be read or does not belong to this run; the message names the file."""


def net_options(p: config.TrainParams) -> NetOptions:
    """The networks' options (G and D) from a run's train params."""
    return NetOptions(base_width=p.base_width, res_blocks=p.res_blocks, image_size=p.image_size, norm=p.norm,
                      spectral_norm_d=p.spectral_norm, d_layers=p.d_layers, color_head=p.color_head,
                      bg_head=p.bg_head, bg_fill=p.bg_fill, attention_prior=p.attention_prior,
                      tsf_detail=p.tsf_detail)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    data: bytes | None = None) -> dict[str, Any]:
    """Read a checkpoint file; a missing, damaged or foreign file raises CheckpointError naming it.
    data: the file's bytes, where the caller has read them (to hash exactly what is loaded)."""
    path = Path(path)
    if data is None and not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path if data is None else io.BytesIO(data), map_location=map_location,
                           weights_only=True)
    except Exception as err:  # a damaged or foreign file raises many kinds (KeyError for text, ...)
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is "
                              "damaged: delete it to train from scratch") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an lwgan training checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has version {state.get('version')}; this lwgan reads "
                              f"version {VERSION}")
    return state


def inference_weights(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The G weights inference and evaluation use: the moving average when the run kept one
    (`train.g_ema`), else the last trained weights."""
    return state.get("generator_ema", state["generator"])


def trained_on(state: Mapping[str, Any]) -> str:
    """What a checkpoint's G was trained on (`lwgan.data.cache.FramesCache.data_kind`): "synthetic",
    "footage", or "unknown" for a checkpoint from before this was recorded."""
    return str(state.get("config", {}).get("trained_on", "unknown"))


def load_generator(path: str | Path, device: torch.device) -> tuple[Generator, config.TrainParams]:
    """The trained G of a checkpoint, in eval mode, and the train params it was made with."""
    return generator_from_state(read_checkpoint(path), Path(path), device)


def train_params_of(state: Mapping[str, Any], path: Path) -> config.TrainParams:
    """The train params a checkpoint already read (`read_checkpoint`) from `path` was made with."""
    try:
        # checkpoints from before the residual heads were made with the original's, those from before
        # attention_prior with 4, those from before bg_fill with pull-push
        train_tree = {"color_head": "direct", "bg_head": "direct", "attention_prior": 4.0,
                      "bg_fill": "pull_push", **state["config"]["train"]}
        tree = {"data": {"image_size": train_tree["image_size"]}, "train": train_tree}
        return config.from_dict(tree).train
    except config.ConfigError as err:
        raise CheckpointError(f"checkpoint {path} holds a config this lwgan cannot read: {err}") from err


def generator_from_state(state: Mapping[str, Any], path: Path, device: torch.device
                         ) -> tuple[Generator, config.TrainParams]:
    """`load_generator` for a checkpoint already read (`read_checkpoint`) from `path`."""
    train = train_params_of(state, path)
    generator = Generator(net_options(train))
    try:
        generator.load_state_dict(inference_weights(state))
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not match its own config: {err}") from err
    return generator.to(device).eval(), train
