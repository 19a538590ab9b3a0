"""Build MediaPipe's `hand_landmarker.task` offline, from a registry package.

mediapipe 1.x ships no models, and its Tasks API wants a `.task` bundle (a zip of
two TFLite models). mediapipe 0.10.21's wheel on PyPI carries the same two models
for its legacy API: `palm_detection_full.tflite` and `hand_landmark_full.tflite`.
Stored uncompressed under the names the Tasks API looks for (`hand_detector.tflite`,
`hand_landmarks_detector.tflite`) they make a `.task` that mediapipe 1.2.2 loads.

`build_hand_task` fetches that wheel with pip (no hub, no download of its own), checks
both models by sha256 and writes the bundle, each model aligned to 64 bytes in the
zip so TFLite can map it without copying. `run_show.py hands model` calls it; an
install script runs that once.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from runtime.errors import InputError
from runtime.models import cache_dir

log = logging.getLogger(__name__)

#: The registry package whose wheel carries the models.
SOURCE_PACKAGE = "mediapipe==0.10.21"
#: One fixed wheel, whatever the machine: the models are data and the same in every
#: wheel of the release; pinning one keeps the hashes below true.
SOURCE_WHEEL_TAGS = ("--python-version", "3.11", "--platform", "manylinux_2_28_x86_64")

#: name inside the .task <- (path inside the wheel, sha256 of the model).
MODELS = {
    "hand_detector.tflite": (
        "mediapipe/modules/palm_detection/palm_detection_full.tflite",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    ),
    "hand_landmarks_detector.tflite": (
        "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    ),
}

#: Byte alignment of each model's data inside the bundle (TFLite needs 4 to map it).
ALIGN_BYTES = 64
#: A zip extra-field id for padding (the one Android's zipalign uses).
_PAD_EXTRA_ID = 0xD935
#: Fixed timestamps make the bundle byte-for-byte reproducible.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def default_task_path() -> Path:
    """The hand landmarker bundle's default place, in the model cache
    (runtime.models.cache_dir). Thread: any."""
    return cache_dir() / "hand_landmarker.task"


def download_wheel(folder: Path) -> Path:
    """Fetch mediapipe 0.10.21's wheel from the package registry with pip.

    Args:
        folder: where pip puts the wheel.
    Returns:
        The wheel's path.
    Raises:
        InputError: pip failed (no network, no registry); its last lines are in the
            message.
    Thread: main (blocks for the download, about 36 MB).
    """
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        *SOURCE_WHEEL_TAGS, "--dest", str(folder), SOURCE_PACKAGE,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("mediapipe-0.10.21-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise InputError(f"pip could not download {SOURCE_PACKAGE}:\n{tail}")
    return wheels[0]


def build_hand_task(out: Path, *, wheel: Path | None = None) -> Path:
    """Write the hand landmarker bundle from mediapipe 0.10.21's wheel.

    Args:
        out: the .task file to write (its folder is made; written atomically).
        wheel: a mediapipe 0.10.21 wheel already on disk; None downloads it with pip.
    Returns:
        `out`.
    Raises:
        InputError: the wheel cannot be had or read, or a model in it does not match
            its sha256.
    Thread: main.
    """
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="latentstage-hands-") as tmp:
        if wheel is None:
            wheel = download_wheel(Path(tmp))
        models = _read_models(Path(wheel))
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as bundle:
            for name, data in models.items():
                _write_aligned(bundle, name, data)
        partial.replace(out)
    return out


def ensure_hand_task(
    out: Path | None = None, *, wheel: Path | None = None, force: bool = False
) -> str:
    """Build the bundle unless a good one is already there (`run_show.py hands model`).

    Args:
        out: the bundle; None for `default_task_path()`.
        wheel: a mediapipe 0.10.21 wheel on disk; None fetches it with pip.
        force: rebuild even when the bundle there checks out.
    Returns:
        One line saying what was done.
    Raises:
        InputError: the wheel cannot be had or does not hold the expected models.
    Thread: main.
    """
    out = Path(out) if out is not None else default_task_path()
    if out.exists() and not force:
        try:
            check_hand_task(out)
        except InputError as exc:
            log.info("rebuilding: %s", exc)
        else:
            return f"{out}: already built and checked"
    log.info("building %s from %s", out, wheel or f"{SOURCE_PACKAGE} (pip download)")
    build_hand_task(out, wheel=wheel)
    check_hand_task(out)
    return f"{out}: {out.stat().st_size / 1e6:.1f} MB, checked"


def check_hand_task(path: Path) -> None:
    """Check that a bundle holds both models with the expected hashes.

    Args:
        path: the .task file.
    Raises:
        InputError: missing, not a zip, or a model is absent or altered.
    Thread: any.
    """
    try:
        with zipfile.ZipFile(path) as bundle:
            for name, (_, sha256) in MODELS.items():
                if hashlib.sha256(bundle.read(name)).hexdigest() != sha256:
                    raise InputError(f"{path}: {name} does not match its sha256")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{path}: not a hand landmarker bundle ({exc})") from None


def _read_models(wheel: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            models = {name: archive.read(member) for name, (member, _) in MODELS.items()}
    except FileNotFoundError:
        raise InputError(f"{wheel}: no such wheel") from None
    except (zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{wheel}: not a mediapipe 0.10.21 wheel ({exc})") from None
    for name, data in models.items():
        member, sha256 = MODELS[name]
        if hashlib.sha256(data).hexdigest() != sha256:
            raise InputError(f"{wheel}: {member} does not match its sha256 (expected {sha256})")
    return models


def _write_aligned(bundle: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    # The local header is 30 bytes + name + extra; pad the extra so the data that
    # follows starts on an ALIGN_BYTES boundary.
    start = bundle.fp.tell() + 30 + len(name.encode()) + 4
    pad = -start % ALIGN_BYTES
    info.extra = _PAD_EXTRA_ID.to_bytes(2, "little") + pad.to_bytes(2, "little") + bytes(pad)
    bundle.writestr(info, data)
