"""Stage `evaluate`: self-imitation on the validation videos for the trained LWGAN and a naive reference
(warped source over an inpainted background): SSIM, PSNR, LPIPS and body L1 in metrics, cross-imitation's
Fréchet distance and KID on EfficientNet-Lite0 features (FID / IS with the Inception weights), a
side-by-side grid and one mp4 per validation video. The run records each metric network's file and
sha256."""


from lwgan import errors, stage
from lwgan.pipeline.evaluate import EvalSettings, evaluate, tracking_records
from lwgan.train.distributed import from_environment, pick_device


def main() -> None:
    args = stage.parse_args("evaluate", __doc__,
                            inputs={"frames": "frames cache (frames.h5)",
                                    "maps": "correspondence cache (maps.h5)",
                                    "smpl": "SMPL cache (smpl.h5)", "body": "resolved body model (.npz)",
                                    "checkpoint": "training checkpoint"},
                            outputs={"out_dir": "folder of the grid and videos", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    p = params.evaluate
    settings = EvalSettings(frames=args.frames, maps=args.maps, smpl=args.smpl, body=args.body,
                            checkpoint=args.checkpoint, out_dir=args.out_dir,
                            max_frames=p.max_frames_per_video, batch_size=p.batch_size,
                            device=str(pick_device(p.device, from_environment())), fps=p.fps,
                            lpips_net=p.lpips_net, lpips_backbone=p.lpips_backbone,
                            lpips_linear=p.lpips_linear, feature_weights=p.feature_weights,
                            inception_weights=p.inception_weights)
    with stage.tracked_run("evaluate", params, sections=("evaluate",)) as run:
        metrics = evaluate(settings)
        net_params, net_tags = tracking_records(metrics["feature_nets"])
        run.log_params(net_params)
        run.set_tags(net_tags)
        stage.write_metrics(args.metrics, metrics, run)
        run.log_artifacts([args.out_dir / "grid.png"])
        run.log_artifacts([args.out_dir / "videos"], "videos")


if __name__ == "__main__":
    errors.exit_with(main)
