"""Body models: SMPL-format files, the open default body, cameras, poses."""

from __future__ import annotations

from pathlib import Path

from lwgan.body.extras import complete_extras
from lwgan.body.model import default_body_path
from lwgan.body.model_io import BodyModelData, load_body_model


def resolve_model_path(spec: str) -> Path:
    """``"default"`` -> the shipped default body; anything else is a path to an SMPL-format file."""
    return default_body_path() if spec == "default" else Path(spec)


def load_configured(model: str, extras: str = "") -> BodyModelData:
    """The body model named by params ``body.model`` / ``body.extras``, extras completed where derivable."""
    return complete_extras(load_body_model(resolve_model_path(model), extras or None))
