"""`lwgan imitate`, `lwgan transfer` and `lwgan view`: argument parsing, loading, and writing the outputs.

Each command reads a training checkpoint (default models/checkpoint.pt, what `dvc repro train` writes),
the body model it was trained with (default data/body/body.npz, else the one params.yaml names), fits the
user's photo and video with the fit stage's detector and fitter (params.yaml's `fit` section and
`data.crop_margin`), synthesises, and writes the output with a JSON record beside it (OUT.json: inputs,
crops, fit flags, checkpoint step, camera strategy, personalisation losses).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from lwgan import config
from lwgan.apps import identity, media, tasks
from lwgan.apps.person import Person, fit_person
from lwgan.apps.synthesis import Synthesizer
from lwgan.body.fitting import FitOptions
from lwgan.body.model import BodyModel
from lwgan.errors import UserError
from lwgan.io import write_json, write_png, write_video
from lwgan.nets.build import CHECKPOINT_FILE
from lwgan.nets.options import BACKGROUND_CHOICES
from lwgan.progress import ProgressLog

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path("models") / CHECKPOINT_FILE
DEFAULT_BODY = Path("data") / "body" / "body.npz"
DEFAULT_PARAMS = Path("params.yaml")
# Train keys that shape the networks: a checkpoint must agree with the params on every one.
NET_KEYS = ("image_size", "base_width", "res_blocks", "norm", "d_layers", "spectral_norm")


class CommandError(UserError, RuntimeError):
    """A problem the user can fix; printed as one line."""


@dataclasses.dataclass
class Context:
    synth: Synthesizer
    people: Any  # the detector's two halves: `lwgan.data.detector.MediaPipePeople`
    fit: FitOptions
    margin: float
    params_file: str
    person: str = "largest"  # data.person: whom to follow when several people are seen
    face_weights: str = ""  # dlib's face ResNet, for the check that several photos show one person


def _params(path: str | None) -> tuple[config.Params, str]:
    if path:
        return config.load(path), str(path)
    if DEFAULT_PARAMS.is_file():
        return config.load(DEFAULT_PARAMS), str(DEFAULT_PARAMS)
    return config.from_dict({}), "(built-in defaults)"


def check_checkpoint(synth: Synthesizer, params: config.Params, params_file: str) -> None:
    """CommandError naming every network key on which the checkpoint and the params disagree."""
    path, cfg = synth.checkpoint, config.to_dict(synth.train)
    wanted = config.to_dict(params.train)
    differ = [f"train.{k}: checkpoint {cfg.get(k)!r}, params {wanted[k]!r}" for k in NET_KEYS
              if cfg.get(k) != wanted[k]]
    if differ:
        raise CommandError(f"checkpoint {path} does not match {params_file} (" + "; ".join(differ)
                           + "): pass the checkpoint trained with these params (dvc repro train), or the "
                           "params it was trained with (--params FILE)")


def _body(path: str | None, params: config.Params) -> BodyModel:
    if path:
        return BodyModel.from_file(path)
    if DEFAULT_BODY.is_file():
        return BodyModel.from_file(DEFAULT_BODY)
    from lwgan.body import load_configured

    return BodyModel(load_configured(params.body.model, params.body.extras))


def _device(kind: str) -> torch.device:
    if kind == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda was asked for but no CUDA device is available; use auto or cpu")
    return torch.device("cuda" if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()) else "cpu")


def _context(args: argparse.Namespace, visible_faces: bool | None = None) -> Context:
    params, params_file = _params(args.params)
    background = args.background
    if getattr(args, "personalize_background", False) and args.personalize:
        if background == "fill":
            raise CommandError("--personalize-background tunes the background stream, which --background "
                               "fill does not run; use --background learned (or auto) with it")
        background = "learned"  # the stream it tunes is the one used
    synth = Synthesizer(Path(args.checkpoint), _body(args.body, params), _device(args.device),
                        args.batch_size, visible_faces=visible_faces, background=background)
    check_checkpoint(synth, params, params_file)
    from lwgan.body.detect import MediaPipePeople

    try:
        people = MediaPipePeople()
    except ImportError as err:
        raise CommandError(str(err)) from err
    fit = FitOptions.from_params(params.fit, footage=True)  # a user's photos and videos
    t = params.train
    face_weights = t.face_weights if t.face_net == "dlib" else config.TrainParams().face_weights
    return Context(synth, people, fit, params.data.crop_margin, params_file, params.data.person, face_weights)


def _fit(ctx: Context, clip: media.Footage) -> Person:
    return fit_person(clip, ctx.people, ctx.synth.body, ctx.synth.side, ctx.margin, ctx.fit, ctx.person)


def _one_person(ctx: Context, args: argparse.Namespace, clips: list[media.Footage],
                sources: list[Person]) -> dict[str, Any] | None:
    """Several photos given as one person's: their faces compared (`lwgan.apps.identity`), CommandError
    naming the two files where they are not one person's, unless --any-person. The record's entry."""
    if len(sources) < 2:
        return None
    if args.any_person:
        return {"checked": False, "why_not": "--any-person"}
    faces = [identity.face_of(p, ctx.synth.body) for p in sources]
    if sum(not f.why for f in faces) >= 2:  # two faces worth comparing
        from lwgan.nets.pretrained import load_feature_net
        from lwgan.weights import WeightsError

        try:
            net, _ = load_feature_net("dlib", ctx.face_weights, param="train.face_weights")
        except WeightsError as err:
            raise CommandError(f"comparing the faces of the --source photos needs dlib's face network: "
                               f"{err}; or pass --any-person to use them as one person's unchecked") from err
        faces = [face if face.why else identity.described(face, next(clip.frames()), net)
                 for face, clip in zip(faces, clips, strict=True)]  # a photo decoded only to be compared
    apart = identity.different(faces)
    if apart:
        i, j, distance = apart[0]
        raise CommandError(f"--source {faces[i].name} and --source {faces[j].name} do not look like one "
                           f"person: their faces are {distance:.2f} apart, over {identity.SAME_PERSON} "
                           "(dlib's face network); give photos of one person, or pass --any-person to use "
                           "them together anyway")
    record = identity.summary(faces)
    for face in record["faces"]:
        if "why_not" in face:
            log.info("%s: face not compared (%s)", face["input"], face["why_not"])
    return {"checked": True, **record}


def _tile(ctx: Context, frames: np.ndarray) -> np.ndarray:
    """Crops (N, side, side, 3) -> (N, S, S, 3), as G sees them."""
    size = ctx.synth.size
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def _side_by_side(columns: list[np.ndarray], count: int) -> np.ndarray:
    """Columns of (1 or count, S, S, 3) frames -> (count, S, S * columns, 3); single frames are held."""
    held = [np.repeat(c, count, axis=0) if len(c) == 1 else c for c in columns]
    return np.concatenate(held, axis=2)


def _personalize(ctx: Context, args: argparse.Namespace, *people: Person) -> dict[str, Any]:
    if not args.personalize:
        return {"steps": 0}
    synth = ctx.synth
    sources = tasks.as_sources(synth, people)
    from lwgan.apps.personalize import personalize  # fine-tuning: the only command that trains

    tuned = personalize(synth, sources, args.personalize, args.personalize_lr, args.personalize_background)
    history = tuned.history
    return {"steps": args.personalize, "lr": args.personalize_lr, "background": args.personalize_background,
            "feature_nets": tuned.feature_nets,
            "first": {k: v[0] for k, v in history.items()}, "last": {k: v[-1] for k, v in history.items()}}


def _write(out: Path, frames: np.ndarray, fps: float, record: dict[str, Any], ctx: Context,
           started: float) -> None:
    if out.suffix.lower() in (".mp4", ".avi"):
        write_video(out, list(frames), fps)
    else:
        write_png(out, frames[0])
    record.update(output=str(out), frames=len(frames), width=int(frames.shape[2]),
                  height=int(frames.shape[1]), fps=fps, checkpoint=str(ctx.synth.checkpoint),
                  checkpoint_step=ctx.synth.step, image_size=ctx.synth.size, render_side=ctx.synth.side,
                  params=ctx.params_file, device=str(ctx.synth.device),
                  visible_faces=ctx.synth.visible_faces, background=ctx.synth.background,
                  fit_world_weight=ctx.fit.world_weight, seconds=round(time.perf_counter() - started, 2))
    write_json(Path(f"{out}.json"), record)
    print(f"wrote {out}: {len(frames)} frame(s) of {frames.shape[2]}x{frames.shape[1]}"
          + (f" at {fps:g} fps" if len(frames) > 1 or out.suffix.lower() in (".mp4", ".avi") else ""))


def _progress(label: str) -> ProgressLog:
    return ProgressLog(label, "frames")


def _imitate(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    out = media.check_output(args.output, "video")
    source_clips = [media.read_image(path) for path in args.source]
    driving_clip = media.read_video(args.driving, args.frame_step, args.max_frames)
    ctx = _context(args)
    sources = [_fit(ctx, clip) for clip in source_clips]
    same = _one_person(ctx, args, source_clips, sources)
    driving = _fit(ctx, driving_clip)
    tuned = _personalize(ctx, args, *sources)
    frames = tasks.imitate(ctx.synth, sources, driving, args.camera, _progress("imitate"))
    if args.side_by_side:
        columns = [_tile(ctx, sources[0].frames[:1]), _tile(ctx, driving.frames), frames]
        frames = _side_by_side(columns, len(frames))
    record = {"command": "imitate", "sources": [s.summary() for s in sources], "driving": driving.summary(),
              "camera": args.camera, "personalization": tuned, "one_person": same}
    _write(out, frames, driving.fps, record, ctx, started)
    return record


def _transfer(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    out = media.check_output(args.output, "video" if args.driving else "image")
    clothes_clip, reference_clip = media.read_image(args.source), media.read_image(args.reference)
    driving_clip = media.read_video(args.driving, args.frame_step, args.max_frames) if args.driving else None
    ctx = _context(args)
    clothes, reference = _fit(ctx, clothes_clip), _fit(ctx, reference_clip)
    driving = _fit(ctx, driving_clip) if driving_clip is not None else None
    tuned = _personalize(ctx, args, clothes, reference)
    frames = tasks.transfer(ctx.synth, clothes, reference, driving, args.camera, _progress("transfer"))
    if args.side_by_side:
        columns = [_tile(ctx, clothes.frames[:1]), _tile(ctx, reference.frames[:1])]
        if driving is not None:
            columns.append(_tile(ctx, driving.frames))
        frames = _side_by_side([*columns, frames], len(frames))
    record = {"command": "transfer", "clothes": clothes.summary(), "reference": reference.summary(),
              "driving": driving.summary() if driving else None, "camera": args.camera,
              "personalization": tuned}
    _write(out, frames, driving.fps if driving else media.DEFAULT_FPS, record, ctx, started)
    return record


def _view(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    out = media.check_output(args.output, "video")
    clips = [media.read_image(path) for path in args.source]
    ctx = _context(args, visible_faces=not args.all_faces)
    sources = [_fit(ctx, clip) for clip in clips]
    same = _one_person(ctx, args, clips, sources)
    tuned = _personalize(ctx, args, *sources)
    frames = tasks.view(ctx.synth, sources, args.frames, args.degrees, args.elevation, _progress("view"))
    if args.side_by_side:
        frames = _side_by_side([_tile(ctx, sources[0].frames[:1]), frames], len(frames))
    record = {"command": "view", "sources": [s.summary() for s in sources], "degrees": args.degrees,
              "elevation": args.elevation, "personalization": tuned, "one_person": same}
    _write(out, frames, args.fps, record, ctx, started)
    return record


def _whole(least: int):
    """An argparse type: a whole number of at least `least`, else a message naming the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value
    return parse


def _real(low: float | None = None, high: float | None = None, above: float | None = None):
    """An argparse type: a finite number within [low, high] (and greater than `above`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be greater than {above:g}, got {value:g}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {value:g}")
        return value
    return parse


def _run(handler):
    def run(args: argparse.Namespace) -> int:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        handler(args)
        return 0
    return run


def _common(parser: argparse.ArgumentParser, personalize_default: int = 0) -> None:
    parser.add_argument("-o", "--output", required=True, help="output file")
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT),
                        help=f"training checkpoint (default {DEFAULT_CHECKPOINT})")
    parser.add_argument("--body", default=None,
                        help=f"body model the checkpoint was trained with (default {DEFAULT_BODY}, else "
                             "params.yaml's body section)")
    parser.add_argument("--params", default=None,
                        help="params file: its fit section and data.crop_margin are used, and its train "
                             "section must match the checkpoint's networks (default params.yaml if present)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=_whole(1), default=8, help="target frames per generator pass")
    parser.add_argument("--personalize", type=_whole(0), default=personalize_default, metavar="N",
                        help="fine-tune G on the source photo for N steps first (0 = off)")
    parser.add_argument("--personalize-lr", type=_real(above=0), default=1e-4, help="its Adam step size")
    parser.add_argument("--personalize-background", action="store_true",
                        help="fine-tune the background stream too (off: it learns the mirrored person from "
                             "the mirrored pair and paints it where the person stood; README)")
    parser.add_argument("--background", default="auto", choices=BACKGROUND_CHOICES,
                        help="where the person stood: learned (G's background stream), fill (its "
                             "classical inpainting alone) or auto (fill for a model trained on the "
                             "synthetic set, whose stream does worse on real footage; learned for one "
                             "trained on real videos; README)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="write the inputs beside the output in every frame")


def _any_person(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--any-person", action="store_true",
                        help="use several --source photos as one person's without comparing their faces "
                             "(by default photos whose faces dlib's face network tells apart are refused)")


def _driving(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--driving", required=required, default=None,
                        help="driving video: a video file or a folder of numbered images")
    parser.add_argument("--frame-step", type=_whole(1), default=1, help="use every N-th driving frame")
    parser.add_argument("--max-frames", type=_whole(0), default=0, help="at most N driving frames (0 = all)")
    parser.add_argument("--camera", default="smooth", choices=tasks.CAMERA_STRATEGIES,
                        help="where the person is placed in each frame (see lwgan.apps.tasks)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add imitate, transfer and view to the `lwgan` command's subparsers."""
    imitate = sub.add_parser("imitate", help="a photo of a person performs the motion of a video",
                             description="Motion imitation: the person of --source performs the motion of "
                                         "--driving; writes a video.")
    imitate.add_argument("--source", required=True, action="append",
                         help="photo of the person (one person, seen whole); repeat it for more photos of "
                              "the same person (e.g. front and back), each face taken from the first "
                              "photo that shows it")
    _any_person(imitate)
    _driving(imitate, required=True)
    _common(imitate)
    imitate.set_defaults(func=_run(_imitate))

    transfer = sub.add_parser("transfer", help="the clothes of one person onto another, head kept",
                              description="Appearance transfer: the person of --reference wearing the "
                                          "clothes of --source, with the reference's head and background; "
                                          "an image, or with --driving a video of the motion.")
    transfer.add_argument("--source", required=True, help="photo of the person whose clothes are taken")
    transfer.add_argument("--reference", required=True, help="photo of the person who gets them")
    _driving(transfer, required=False)
    _common(transfer)
    transfer.set_defaults(func=_run(_transfer))

    view = sub.add_parser("view", help="novel views of a photo: a turntable video",
                          description="Novel view synthesis: the person of --source turned about the "
                                      "vertical axis; writes a video.")
    view.add_argument("--source", required=True, action="append",
                      help="photo of the person; repeat it for more photos (e.g. the back) that fill what "
                           "the first does not show")
    _any_person(view)
    view.add_argument("--frames", type=_whole(1), default=36, help="views in the video")
    view.add_argument("--degrees", type=_real(), default=360.0, help="total turn (360 = a full turntable)")
    view.add_argument("--elevation", type=_real(-90, 90), default=0.0,
                      help="tilt of the camera in degrees, between -90 and 90")
    view.add_argument("--fps", type=_real(above=0), default=15.0)
    view.add_argument("--all-faces", action="store_true",
                      help="also take texture for faces the photo does not show (default: leave them to G)")
    _common(view)
    view.set_defaults(func=_run(_view))
