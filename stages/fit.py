"""Stage `fit`: body-mesh recovery on every frame of the frames cache, one video per Ray worker; writes
one SMPL shard per video (resumable), smpl.h5 linking them, overlays of the fitted mesh, and quality
metrics (detection rate, reprojection error, silhouette IoU, MPJPE / PA-MPJPE on the synthetic set)."""

from pathlib import Path

from lwgan import errors, stage
from lwgan.body.fit import FitOptions
from lwgan.data.smpl_cache import INDEX_FILE, SmplCache
from lwgan.parallel import PoolOptions
from lwgan.pipeline.fit import FitSettings, fit_all, summarise
from lwgan.progress import ProgressLog


def main() -> None:
    args = stage.parse_args("fit", __doc__, inputs={"frames": "frames cache (frames.h5)",
                                                    "body": "resolved body model (.npz)"},
                            outputs={"out_dir": "SMPL cache folder", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    fit = params.fit
    settings = FitSettings(
        frames_path=args.frames.resolve(), body_path=args.body.resolve(), out_dir=args.out_dir.resolve(),
        keypoints=fit.keypoints,
        keypoints_root=Path(fit.keypoints_root).expanduser().resolve() if fit.keypoints_root else None,
        options=FitOptions(pose_iterations=fit.pose_iterations, camera_iterations=fit.camera_iterations,
                           silhouette_weight=fit.silhouette_weight, chunk_size=fit.chunk_frames),
        overlays_per_video=fit.overlays_per_video,
    )
    with stage.tracked_run("fit", params, sections=("fit", "ray")) as run:
        pool = PoolOptions(num_workers=params.ray.workers, address=params.ray.address or None,
                           use_ray=params.ray.enabled)
        done = fit_all(settings, pool, progress=ProgressLog("fit", "videos", every_s=0.0))
        metrics = summarise(SmplCache(settings.out_dir / INDEX_FILE),
                            seconds=sum(r["seconds"] for r in done.results),
                            frames_run=sum(r["frames"] for r in done.results))
        metrics.update(videos_fitted_now=len(done.results), videos_reused=len(done.reused),
                       videos_failed=len(done.failures))
        stage.write_metrics(args.metrics, metrics, run)
        run.log_artifacts([settings.out_dir / "overlays"], "overlays")
        failures, total = done.failures, done.videos
        if total and len(failures) / total > fit.max_failure_fraction:
            raise errors.UserError(
                f"{len(failures)} of {total} videos failed, more than fit.max_failure_fraction = "
                f"{fit.max_failure_fraction}:\n" + "\n".join(f"  {f.key}: {f.reason}" for f in failures))


if __name__ == "__main__":
    errors.exit_with(main)
