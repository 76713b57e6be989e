"""Stage `synthesize`: render the embedded default data set (synthetic iPER-like videos with exact ground
truth) from the resolved body model. Finished videos are reused on a rerun with the same options."""

from lwgan import errors, stage
from lwgan.synth import synthesize


def main() -> None:
    args = stage.parse_args("synthesize", __doc__, inputs={"body": "resolved body model (.npz)"},
                            outputs={"out_dir": "data set folder (iPER layout)", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    with stage.tracked_run("synthesize", params, sections=("seed", "synth")) as run:
        report = synthesize.run(params, args.body, args.out_dir)
        metrics = {
            "videos": report.videos,
            "frames": report.frames,
            "rendered_videos": report.rendered_videos,
            "reused_videos": report.reused_videos,
            "seconds": round(report.seconds, 3),
            "frames_per_s": round(report.frames_per_s, 2),
            "bytes_per_frame": round(report.bytes / max(report.frames, 1)),
        }
        run.set_tags({"lwgan.synth_content_hash": report.content_hash})
        stage.write_metrics(args.metrics, metrics, run)
        run.log_artifacts([args.out_dir / "preview.png"])


if __name__ == "__main__":
    errors.exit_with(main)
