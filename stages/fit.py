"""Stage `fit`: body-mesh recovery on every frame of the frames cache, one video per Ray worker; writes
one SMPL shard per video (resumable), smpl.h5 linking them, overlays of the fitted mesh, and quality
metrics (detection rate, reprojection error, silhouette IoU, MPJPE / PA-MPJPE on the synthetic set), with
an ok / poor / failed verdict on every video."""

import tempfile
from pathlib import Path

from lwgan import errors, stage
from lwgan.body import fit


def main() -> None:
    args = stage.parse_args("fit", __doc__, inputs={"frames": "frames cache (frames.h5)",
                                                    "body": "resolved body model (.npz)"},
                            outputs={"out_dir": "SMPL cache folder", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    with stage.tracked_run("fit", params, sections=("fit", "ray")) as run:
        settings, report = fit.run(params, args.frames, args.body, args.out_dir)
        run.log_params({"fit.world_weight_resolved": settings.options.world_weight})
        stage.write_metrics(args.metrics, report.metrics)
        run.log_metrics(report.scalars)
        with tempfile.TemporaryDirectory() as tmp:
            run.log_artifacts([report.write_videos(Path(tmp) / "fit_videos.json")])
        run.log_artifacts([settings.out_dir / "overlays"], "overlays")
        fit.fail_past_threshold(settings, report, params.fit)
        fit.release_kept(settings)  # finished: DVC stores the output now


if __name__ == "__main__":
    errors.exit_with(main)
