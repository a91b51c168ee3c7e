"""What training reads: the training and validation photos (--data, --val, or a split), loaded and prepared for the
network, and which of them each epoch draws (source weights, oversampling) with the class weights of that draw."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegender.config import Config
from facegender.data import (
    SOURCE_COLUMN,
    Dataset,
    concat,
    load_images,
    overlap,
    resolve_splits,
    scan_dataset,
    split_train_val,
)
from facegender.errors import FaceGenderError, ImageError, OptionError
from facegender.progress import bar, log

DataArg = str | Path | list[str] | list[Path]
ValArg = str | Path | list[str] | list[Path] | None


def as_list(folders: DataArg | ValArg) -> list[str | Path]:
    if folders is None:
        return []
    return [folders] if isinstance(folders, (str, Path)) else list(folders)


@dataclass
class Split:
    """The training and validation datasets, scanned (no photo read yet)."""

    train: Dataset
    val: Dataset
    train_folders: list[str | Path]  # the training dataset folders (a data/train/ in place of data/), for model.json


def read_split(config: Config, data: DataArg, val: ValArg) -> Split:
    """--data's dataset(s) and --val's; without a validation folder (none given, no data/val/), a split of --data."""
    folders = as_list(data)
    val_folders = as_list(val)
    for option, named in (("data", folders), ("val", val_folders)):
        if len({os.path.realpath(folder) for folder in named}) < len(named):
            raise OptionError(
                f"{{{option}}} names the same folder twice ({{folders}}); name each once",
                folders=" ".join(map(str, named)),
            )
    val_dirs = [Path(v) for v in val_folders]
    if len(folders) == 1:
        train_dir, val_dir = resolve_splits(folders[0], val_folders[0] if len(val_folders) == 1 else None)
        val_dirs = val_dirs or ([val_dir] if val_dir is not None else [])
        train_folders: list[str | Path] = [train_dir]
        train_set = scan_dataset(train_dir)
    else:  # several training folders, e.g. train/ and train-extra/
        train_folders = folders
        train_set = concat([scan_dataset(folder) for folder in folders])
    if not val_dirs:
        train_set, val_set = split_train_val(train_set, config.val_fraction, config.seed)
        log(f"no validation folder: split off {len(val_set)} images ({config.val_fraction:.0%}, by identity if known)")
    else:  # several validation folders: one combined set, reported per folder too
        val_set = concat([scan_dataset(folder, min_per_class=1) for folder in val_dirs])
        duplicated = overlap(train_set, val_set)
        if duplicated:
            log(
                f"warning: {len(duplicated)} validation image(s) also appear in the training data "
                f"(e.g. {duplicated[0]}); validation metrics will be optimistic"
            )
    return Split(train_set, val_set, train_folders)


@dataclass
class Photos:
    """A dataset's photos that could be read, prepared for the network."""

    images: np.ndarray  # uint8 (n, size, size, 3)
    dataset: Dataset  # their rows: files, labels, labels.csv columns
    skipped: list[ImageError]  # the files that could not be read
    squares: list[np.ndarray] | None = None  # with keep_squares: each image's square at the photo's resolution


def load_photos(dataset: Dataset, config: Config, name: str, keep_squares: bool = False) -> Photos:
    """Read and prepare the dataset's photos (data.load_images), naming the unreadable ones; refuse a class left
    without a readable photo. keep_squares: also keep each image's square before the resize (cached adverse views
    degrade it at the photo's resolution)."""
    squares: list[np.ndarray] | None = [] if keep_squares else None
    with bar(len(dataset), f"load {name}") as progress:
        images, kept, errors = load_images(
            dataset.files,
            config.image_size,
            config.crop,
            progress=progress.update,
            face_crops=config.face_crops,
            face_scale=config.face_scale,
            squares=squares,
        )
    for error in errors[:20]:
        log(f"skipped {error.path}: {error.reason}")
    if errors:
        log(f"{name}: skipped {len(errors)} unreadable image(s) of {len(dataset)}")
    kept_set = dataset.subset(kept)
    if min(kept_set.counts().values()) < 1:
        raise FaceGenderError(f"{name} data has no readable image of one class: {kept_set.counts()}")
    return Photos(images, kept_set, errors, squares)


def source_indices(dataset: Dataset, weights: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Indices of the photos one epoch draws before class balancing: each source's photos repeated by its weight
    (a fraction drawn at random without replacement), in the order of the sources; all photos once without
    weights."""
    if not weights:
        return np.arange(len(dataset))
    sources = dataset.columns.get(SOURCE_COLUMN, ["all"] * len(dataset))
    names = list(dict.fromkeys(sources))
    if len(weights) != len(names):
        raise OptionError(
            "source_weights has {count} weight(s) but training reads {folders} folder(s) ({names}); give one "
            "weight per {data} folder",
            count=len(weights),
            folders=len(names),
            names=", ".join(names),
        )
    picked = []
    for name, weight in zip(names, weights, strict=True):
        members = np.flatnonzero(np.asarray(sources) == name)
        whole, fraction = divmod(weight, 1.0)
        extra = rng.permutation(members)[: round(fraction * len(members))]
        picked.append(np.concatenate([np.tile(members, int(whole)), np.sort(extra)]))
    return np.concatenate(picked)


def oversample_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All indices, plus minority-class indices drawn (without replacement first) until the classes match."""
    counts = np.bincount(labels, minlength=2)
    minority = int(np.argmin(counts))
    members = np.flatnonzero(labels == minority)
    need = int(counts.max() - counts.min())
    extra = np.concatenate([rng.permutation(members) for _ in range(need // len(members) + 1)])[:need]
    return np.concatenate([np.arange(len(labels)), extra])


def epoch_indices(dataset: Dataset, config: Config, rng: np.random.Generator) -> np.ndarray:
    """The photos one epoch draws: source weights applied, then the classes balanced when config.oversample."""
    indices = source_indices(dataset, config.source_weights, rng)
    if config.oversample:
        indices = indices[oversample_indices(dataset.labels[indices], rng)]
    return indices


def class_weight_of(labels: np.ndarray) -> dict[int, float]:
    """Balanced class weights n / (2 * count) of the labels the model is trained on."""
    counts = np.bincount(labels, minlength=2).astype(float)
    return {i: float(len(labels) / (2 * counts[i])) for i in range(2)}


@dataclass
class TrainingData:
    """The prepared photos a fit strategy trains and validates on."""

    x_train: np.ndarray  # uint8 (n, size, size, 3)
    y_train: np.ndarray  # 0 female, 1 male
    indices: np.ndarray  # into x_train: the photos one epoch draws (epoch_indices)
    x_val: np.ndarray
    y_val: np.ndarray
    squares: list[np.ndarray] | None = None  # each training image's square at the photo's resolution (Photos)

    def steps(self, batch_size: int) -> int:
        """Batches per epoch."""
        return -(-len(self.indices) // batch_size)
