"""The body stage's work: resolve the configured body model into one `.npz` (SMPL keys plus keypoint
regressor, part labels and surface coordinates, derived where the file lacks them) and render a preview
sheet of it in several poses."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lwgan.body import load_configured, resolve_model_path
from lwgan.body.model import BodyModel
from lwgan.body.model_io import save_body_model
from lwgan.body.preview import preview_sheet
from lwgan.config import BodyParams
from lwgan.io import write_png

MODEL_FILE, PREVIEW_FILE = "body.npz", "preview.png"


@dataclasses.dataclass(frozen=True)
class BodyOutputs:
    """What `build` wrote, where the model came from, and the preview's figures."""

    model: Path
    preview: Path
    source: Path
    metrics: dict[str, Any]


def build(params: BodyParams, out_dir: Path) -> BodyOutputs:
    """Write ``out_dir/body.npz`` and ``out_dir/preview.png`` for the body model `params` name."""
    data = load_configured(params.model, params.extras)
    model = save_body_model(data, out_dir / MODEL_FILE)
    sheet, metrics = preview_sheet(BodyModel(data), params.preview_size, params.preview_poses)
    preview = write_png(out_dir / PREVIEW_FILE, sheet)
    return BodyOutputs(model, preview, resolve_model_path(params.model), metrics)
