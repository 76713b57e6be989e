"""Stage `synthesize`: render the embedded default data set (synthetic iPER-like videos with exact ground
truth) from the resolved body model. Finished videos are reused on a rerun with the same options."""

from lwgan import errors, stage
from lwgan.body.model import BodyModel
from lwgan.data.synth import SynthOptions, synthesize
from lwgan.progress import ProgressLog


def main() -> None:
    args = stage.parse_args("synthesize", __doc__, inputs={"body": "resolved body model (.npz)"},
                            outputs={"out_dir": "data set folder (iPER layout)", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    synth = params.synth
    options = SynthOptions(subjects=synth.subjects, clothes=synth.clothes,
                           frames_per_action=synth.frames_per_action, image_size=synth.image_size,
                           val_subjects=synth.val_subjects, seed=params.seed, workers=synth.workers)
    with stage.tracked_run("synthesize", params, sections=("seed", "synth")) as run:
        report = synthesize(options, BodyModel.from_file(args.body), args.out_dir,
                            progress=ProgressLog("synthesize", "frames"))
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
