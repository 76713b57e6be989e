"""Stage `body`: resolve the configured body model into data/body/body.npz (SMPL keys plus keypoint
regressor, part labels and surface coordinates, derived where the file lacks them) and render a preview
sheet of it in several poses (`lwgan.body.body`)."""

from lwgan import errors, stage
from lwgan.body import body


def main() -> None:
    args = stage.parse_args("body", __doc__, outputs={"out_dir": "output folder", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    with stage.tracked_run("body", params, sections=("seed", "body")) as run:
        out = body.build(params.body, args.out_dir)
        run.set_tags({"lwgan.body_model": str(out.source)})
        stage.write_metrics(args.metrics, out.metrics, run)
        run.log_artifacts([out.preview])


if __name__ == "__main__":
    errors.exit_with(main)
