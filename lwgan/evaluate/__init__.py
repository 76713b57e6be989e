"""Evaluation: self- and cross-imitation of a trained model against the naive warp, with pictures."""
