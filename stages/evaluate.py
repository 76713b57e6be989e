"""Stage `evaluate`: self-imitation on the validation videos for the trained LWGAN and a naive reference
(warped source over an inpainted background): SSIM, PSNR, LPIPS and body L1 in metrics, cross-imitation's
Fréchet distance and KID on EfficientNet-Lite0 features (FID / IS with the Inception weights), a
side-by-side grid and one mp4 per validation video. The run records each metric network's file and
sha256."""


from lwgan import errors, stage
from lwgan.evaluate import evaluate


def main() -> None:
    args = stage.parse_args("evaluate", __doc__,
                            inputs={"frames": "frames cache (frames.h5)",
                                    "maps": "correspondence cache (maps.h5)",
                                    "smpl": "SMPL cache (smpl.h5)", "body": "resolved body model (.npz)",
                                    "checkpoint": "training checkpoint"},
                            outputs={"out_dir": "folder of the grid and videos", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    settings = evaluate.settings_from_params(params.evaluate, args.frames, args.maps, args.smpl, args.body,
                                             args.checkpoint, args.out_dir)
    with stage.tracked_run("evaluate", params, sections=("evaluate",)) as run:
        metrics = evaluate.evaluate(settings)
        net_params, net_tags = evaluate.tracking_records(metrics["feature_nets"])
        run.log_params(net_params)
        run.set_tags({**net_tags, "evaluate.background_resolved": metrics["background"]})
        stage.write_metrics(args.metrics, metrics, run)
        run.log_artifacts([args.out_dir / "grid.png"])
        run.log_artifacts([args.out_dir / "videos"], "videos")


if __name__ == "__main__":
    errors.exit_with(main)
