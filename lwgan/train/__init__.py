"""LWGAN training: the loop (`loop.train`), its objective, the step-pure schedule, checkpoints, DDP and the
pictures a run writes."""
