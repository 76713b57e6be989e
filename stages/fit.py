"""Stage `fit`: body-mesh recovery on every frame of the frames cache, one video per Ray worker; writes
one SMPL shard per video (resumable), smpl.h5 linking them, overlays of the fitted mesh, and quality
metrics (detection rate, reprojection error, silhouette IoU, MPJPE / PA-MPJPE on the synthetic set), with
an ok / poor / failed verdict on every video."""

import tempfile
from pathlib import Path

from lwgan import errors, stage
from lwgan.io import write_json
from lwgan.parallel import PoolOptions
from lwgan.pipeline.fit import fit_all, review, settings_from_params
from lwgan.pipeline.fit_quality import Thresholds, check_failures
from lwgan.progress import ProgressLog


def main() -> None:
    args = stage.parse_args("fit", __doc__, inputs={"frames": "frames cache (frames.h5)",
                                                    "body": "resolved body model (.npz)"},
                            outputs={"out_dir": "SMPL cache folder", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    fit = params.fit
    settings = settings_from_params(fit, args.frames, args.body, args.out_dir)
    with stage.tracked_run("fit", params, sections=("fit", "ray")) as run:
        pool = PoolOptions(num_workers=params.ray.workers, address=params.ray.address or None,
                           use_ray=params.ray.enabled)
        done = fit_all(settings, pool, progress=ProgressLog("fit", "videos", every_s=0.0))
        report = review(settings, Thresholds.from_params(fit), done)
        stage.write_metrics(args.metrics, report.metrics)
        run.log_metrics(report.scalars)
        with tempfile.TemporaryDirectory() as tmp:
            run.log_artifacts([write_json(Path(tmp) / "fit_videos.json", report.metrics["videos"])])
        run.log_artifacts([settings.out_dir / "overlays"], "overlays")
        check_failures(report.videos, fit.max_failure_fraction, str(settings.out_dir / "overlays"))


if __name__ == "__main__":
    errors.exit_with(main)
