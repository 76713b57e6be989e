"""Stage `body`: resolve the configured body model into data/body/body.npz (SMPL keys plus keypoint
regressor, part labels and surface coordinates, derived where the file lacks them) and render a preview
sheet of it in several poses."""

import cv2

from lwgan import errors, stage
from lwgan.body import load_configured, resolve_model_path
from lwgan.body.model import BodyModel
from lwgan.body.model_io import save_body_model
from lwgan.body.preview import preview_sheet
from lwgan.io import atomic_path


def main() -> None:
    args = stage.parse_args("body", __doc__, outputs={"out_dir": "output folder", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    with stage.tracked_run("body", params, sections=("seed", "body")) as run:
        data = load_configured(params.body.model, params.body.extras)
        run.set_tags({"lwgan.body_model": str(resolve_model_path(params.body.model))})
        save_body_model(data, args.out_dir / "body.npz")
        sheet, metrics = preview_sheet(BodyModel(data), params.body.preview_size, params.body.preview_poses)
        preview = args.out_dir / "preview.png"
        with atomic_path(preview) as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        stage.write_metrics(args.metrics, metrics, run)
        run.log_artifacts([preview])


if __name__ == "__main__":
    errors.exit_with(main)
