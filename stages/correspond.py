"""Stage `correspond`: the correspondence maps (face index, projected vertices, head box; barycentrics and
the conditioning map are rebuilt from them when read) of every fitted frame at data.image_size, cached in
HDF5 with the hash of what produced them."""

from lwgan import errors, stage
from lwgan.correspond.correspond import build_maps, release_kept


def main() -> None:
    args = stage.parse_args("correspond", __doc__, inputs={"smpl": "SMPL cache (smpl.h5)",
                                                           "body": "resolved body model (.npz)"},
                            outputs={"out_dir": "correspondence cache folder", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    with stage.tracked_run("correspond", params, sections=("data",)) as run:
        metrics = build_maps(args.smpl, args.body, args.out_dir, params.data.image_size)
        stage.write_metrics(args.metrics, metrics, run)
        release_kept(args.out_dir)  # finished: DVC stores the output now


if __name__ == "__main__":
    errors.exit_with(main)
