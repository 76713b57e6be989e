"""Metrics: pose errors (`lwgan.body.pose_metrics`), full-reference image metrics (`lwgan.metrics.image`:
SSIM, PSNR, masked L1; `lwgan.metrics.lpips`: LPIPS in its published weight layouts) and the arithmetic of
FID and the Inception Score (`lwgan.metrics.distribution`)."""
