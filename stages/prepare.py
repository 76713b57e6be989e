"""Stage `prepare`: decode the configured videos (the synthetic set, the iPER layout or a folder of
videos), crop each to a person-centred square that is stable over the video, and write the frames cache
(one HDF5 shard per video, frames.h5, index.json with the split, report.json, contact_sheet.png).
Finished videos are reused on a rerun; the stage fails only past data.max_failure_fraction."""

from lwgan import errors, stage
from lwgan.data import prepare


def main() -> None:
    args = stage.parse_args("prepare", __doc__, inputs={"synthetic_root": "the synthesize stage's data set"},
                            outputs={"out_dir": "frames cache folder", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    options = prepare.options_from_params(params.data, args.synthetic_root)
    with stage.tracked_run("prepare", params, sections=("data",)) as run:
        run.set_tags({"lwgan.data_root": str(options.root)})
        report = prepare.run(options, args.out_dir)
        stage.write_metrics(args.metrics, report.metrics(), run)
        run.log_artifacts([args.out_dir / name for name in (prepare.CONTACT_SHEET_FILE, prepare.REPORT_FILE,
                                                            prepare.INDEX_FILE)])
        report.raise_for_failures()
        prepare.release_kept(args.out_dir)  # finished: DVC stores the output now


if __name__ == "__main__":
    errors.exit_with(main)
