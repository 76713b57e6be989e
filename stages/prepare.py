"""Stage `prepare`: decode the configured videos (the synthetic set, the iPER layout or a folder of
videos), crop each to a person-centred square that is stable over the video, and write the frames cache
(one HDF5 shard per video, frames.h5, index.json with the split, report.json, contact_sheet.png).
Finished videos are reused on a rerun; the stage fails only past data.max_failure_fraction."""

import logging
from pathlib import Path

from lwgan import errors, stage
from lwgan.data import (
    FRAMES_FILE,
    FramesCache,
    PrepareOptions,
    contact_sheet,
    prepare,
)

log = logging.getLogger("prepare")


def main() -> None:
    args = stage.parse_args("prepare", __doc__, inputs={"synthetic_root": "the synthesize stage's data set"},
                            outputs={"out_dir": "frames cache folder", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    data = params.data
    root = args.synthetic_root if data.source == "synthetic" else Path(data.root).expanduser()
    options = PrepareOptions(
        source="folder" if data.source == "folder" else "iper", root=root, image_size=data.image_size,
        frame_step=data.frame_step, max_frames_per_video=data.max_frames_per_video,
        val_fraction=data.val_fraction, max_failure_fraction=data.max_failure_fraction,
        crop_margin=data.crop_margin, codec=data.codec, jpeg_quality=data.jpeg_quality, workers=data.workers,
        person_box=data.person_box, person=data.person, crop=data.crop, pad=data.pad,  # type: ignore[arg-type]
        min_person_share=data.min_person_share,
    )
    with stage.tracked_run("prepare", params, sections=("data",)) as run:
        run.set_tags({"lwgan.data_root": str(root)})
        report = prepare(options, args.out_dir)  # logs frames done, rate and ETA as it goes
        for problem in report.failed:
            log.warning("skipped %s: %s", problem.path, problem.reason)
        sheet = args.out_dir / "contact_sheet.png"
        contact_sheet(FramesCache(args.out_dir / FRAMES_FILE), sheet)
        stage.write_metrics(args.metrics, report.metrics(), run)
        run.log_artifacts([sheet, args.out_dir / "report.json", args.out_dir / "index.json"])
        report.raise_for_failures()


if __name__ == "__main__":
    errors.exit_with(main)
