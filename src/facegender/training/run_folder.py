"""The run folder a training writes: its name (runs/train, runs/train2, ...), train_args.json (what `--resume`
reads back), history.csv (every epoch, across resumes) and the library versions model.json records."""

from __future__ import annotations

import csv
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from facegender import __version__
from facegender.config import Config, resolve
from facegender.data import refuse_inside_class_folders
from facegender.errors import FaceGenderError, OptionError
from facegender.files import atomic_write_bytes
from facegender.progress import log

TRAIN_ARGS = "train_args.json"


def next_run_dir(base: Path = Path("runs"), name: str = "train") -> Path:
    """runs/train, runs/train2, runs/train3, ... (the first that does not exist)."""
    candidate, n = base / name, 1
    while candidate.exists():
        n += 1
        candidate = base / f"{name}{n}"
    return candidate


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "facegender": __version__, "platform": platform.platform()}
    for module in ("keras", "tensorflow", "numpy", "sklearn", "PIL", "onnxruntime", "onnx"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # not installed or no version: record nothing
            pass
    return versions


def make_run_dir(run_dir: Path, photos: list[Path]) -> None:
    """Create the run folder, refusing one inside a class folder of the `photos` or one that cannot be written."""
    refuse_inside_class_folders(run_dir, photos)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ".write_test").touch()
        (run_dir / ".write_test").unlink()
    except OSError as exc:
        raise OptionError(
            "cannot write the run folder {folder}: {reason}; choose another {out}", folder=run_dir, reason=exc
        ) from exc
    log(f"run folder: {run_dir}")


@dataclass
class TrainArgs:
    """What a run was started with (train_args.json): enough for `resume` to start it again."""

    config: Config
    data: list[str]  # absolute paths: --resume works from any working directory
    val: list[str] | None


def write_train_args(run_dir: Path, data: list[str | Path], val: list[str | Path], config: Config) -> None:
    arguments = {"data": [os.path.abspath(f) for f in data],
                 "val": [os.path.abspath(v) for v in val] or None, "config": config.to_dict()}  # fmt: skip
    atomic_write_bytes(run_dir / TRAIN_ARGS, json.dumps(arguments, indent=2).encode("utf-8"))


def read_train_args(run_dir: Path) -> TrainArgs:
    """The arguments of an interrupted run; a finished, unknown or damaged folder is a FaceGenderError."""
    args_file = run_dir / TRAIN_ARGS
    if not args_file.is_file():
        raise FaceGenderError(f"{run_dir} is not an interrupted run folder (no {TRAIN_ARGS}); nothing to resume")
    if (run_dir / "model.keras").is_file():
        raise FaceGenderError(f"{run_dir} already finished training (model.keras exists); nothing to resume")
    try:
        args = json.loads(args_file.read_text(encoding="utf-8"))
        valid = (
            isinstance(args, dict)
            and isinstance(args.get("config"), dict)
            and isinstance(args.get("data"), list)
            and args["data"]
            and all(isinstance(folder, str) for folder in args["data"])
            and (
                args.get("val") is None
                or isinstance(args["val"], str)
                or (isinstance(args["val"], list) and all(isinstance(v, str) for v in args["val"]))
            )
        )
    except (UnicodeDecodeError, json.JSONDecodeError):
        valid = False
    if not valid:
        raise OptionError(
            "{file} is damaged (it should name the data folders and the config); start the run again without {resume}",
            file=args_file,
        )
    config = resolve(args["config"].get("preset", "default"), args["config"])
    # a str: written by a one-folder version; no key: a run without validation folders
    val = [args["val"]] if isinstance(args.get("val"), str) else args.get("val")
    return TrainArgs(config, args["data"], val)


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv (all epochs, across resumes) as column -> values."""
    history: dict[str, list[float]] = {}
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for key, value in row.items():
                    if key != "epoch" and value not in (None, ""):
                        history.setdefault(key, []).append(float(value))
    return history
