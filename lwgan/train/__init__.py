"""LWGAN training: the train stage's loop (`lwgan.train.train`), the training pairs, the objective, the
step-pure schedule, checkpoints, DDP and the pictures a run writes."""
