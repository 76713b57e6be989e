"""Stage `train`: LWGAN from the frames, correspondence and SMPL caches. Writes the checkpoint (G, D, both
optimisers, step, resolved config; resumed when the run is interrupted), sample grids and loss curves to
the model folder, the curves as a DVC plot, and the last epoch's mean of every loss term as metrics.
Several processes: `torchrun --nproc_per_node=N stages/train.py ...` (rank 0 writes and tracks)."""


from lwgan import errors, stage
from lwgan.train.train import TrainPaths, release_kept, train


def main() -> None:
    args = stage.parse_args("train", __doc__,
                            inputs={"frames": "frames cache (frames.h5)",
                                    "maps": "correspondence cache (maps.h5)",
                                    "smpl": "SMPL cache (smpl.h5)", "body": "resolved body model (.npz)"},
                            outputs={"out_dir": "model folder (checkpoint, samples, curves)",
                                     "plots": "folder of the DVC plot files", "metrics": "metrics JSON"})
    params = stage.load_params(args.params)
    paths = TrainPaths(frames=args.frames, maps=args.maps, smpl=args.smpl, body=args.body,
                       out_dir=args.out_dir, plots_dir=args.plots)
    with stage.tracked_run("train", params, sections=("seed", "train")) as run:
        result = train(params, paths, tracker=run)
        if stage.is_main_process():
            stage.write_metrics(args.metrics, result.metrics, run, step=result.steps)
            stage.record_training(run, result.history, result.resumed_from, args.maps)
            release_kept(args.out_dir)  # finished: DVC stores the output now


if __name__ == "__main__":
    errors.exit_with(main)
