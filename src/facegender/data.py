"""Datasets on disk: a folder with `male/` and `female/` subfolders, and an optional `labels.csv`.

Scanning, validation, splitting and parallel decoding live here; nothing imports TensorFlow.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegender import CLASS_NAMES
from facegender.errors import FaceGenderError, ImageError, OptionError
from facegender.faces.detect import FaceDetector, read_faces
from facegender.faces.images import FACE_FRAMING_SIDE, prepare
from facegender.imagefiles import iter_image_files
from facegender.system import usable_cpus

MIN_IMAGES_PER_CLASS = 2
SOURCE_COLUMN = "source"  # which --data/--val folder a photo came from, when several are used together


@dataclass
class Dataset:
    """Image files with labels (0 = female, 1 = male) and optional per-file columns from labels.csv."""

    root: Path
    files: list[Path]
    labels: np.ndarray
    columns: dict[str, list[str]] = field(default_factory=dict)  # column -> one value per file

    def __len__(self) -> int:
        return len(self.files)

    def counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.labels == index)) for index, name in enumerate(CLASS_NAMES)}

    def subset(self, indices: Iterable[int]) -> Dataset:
        indices = list(indices)
        return Dataset(
            root=self.root,
            files=[self.files[i] for i in indices],
            labels=self.labels[indices],
            columns={name: [values[i] for i in indices] for name, values in self.columns.items()},
        )

    def relative(self, index: int) -> str:
        return self.files[index].relative_to(self.root).as_posix()


def source_name(root: Path) -> str:
    """How a dataset folder is named in reports: its parent and itself, e.g. 'lfw-adverse/val'."""
    root = Path(os.path.abspath(root))
    return f"{root.parent.name}/{root.name}" if root.parent.name else root.name


def concat(datasets: list[Dataset]) -> Dataset:
    """One dataset from several (e.g. train/ + train-extra/); a column missing in one reads 'unknown' there.

    A `source` column names each photo's folder (source_name), so every evaluation reports each source as a
    slice, and training can weigh sources (Config.source_weights).
    """
    if len(datasets) == 1:
        return datasets[0]
    names = sorted({name for ds in datasets for name in ds.columns} - {SOURCE_COLUMN})
    sources: list[str] = []
    for ds in datasets:
        name = source_name(ds.root)
        while name in sources:  # two folders of the same name: number the later one
            name += "+"
        sources.append(name)
    columns = {n: [v for ds in datasets for v in ds.columns.get(n, ["unknown"] * len(ds))] for n in names}
    columns[SOURCE_COLUMN] = [name for name, ds in zip(sources, datasets, strict=True) for _ in range(len(ds))]
    return Dataset(
        root=datasets[0].root,
        files=[f for ds in datasets for f in ds.files],
        labels=np.concatenate([ds.labels for ds in datasets]),
        columns=columns,
    )


def refuse_inside_class_folders(out: Path, files: Iterable[Path], option: str = "--out") -> None:
    """Refuse an output folder inside a class folder (female/ or male/, any case) of these dataset files: the
    images written there would be read as labelled photos the next time the dataset is scanned."""
    target = Path(os.path.realpath(out))
    class_folders = set()
    for file in files:
        folder = next((p for p in file.parents if p.name.lower() in CLASS_NAMES), None)
        if folder is not None:
            class_folders.add(folder)
    for folder in sorted(class_folders):
        # the scanner takes any letter case as a class folder: DATA/MALE/sub would be a second one beside DATA/male
        root = Path(os.path.realpath(folder.parent))
        inside = target.is_relative_to(root) and target != root and target.relative_to(root).parts[0].lower()
        if target.is_relative_to(os.path.realpath(folder)) or inside in CLASS_NAMES:
            if not target.is_relative_to(os.path.realpath(folder)):  # name the folder of the class it is inside
                same = (f for f in class_folders if f.parent == folder.parent and f.name.lower() == inside)
                folder = next(same, folder)
            raise FaceGenderError(
                f"{option} {out} is inside the class folder {folder}: its images would be read as photos the next "
                "time; choose a folder outside the dataset's class folders"
            )


def _class_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() in CLASS_NAMES:
            if child.name.lower() in found:
                raise FaceGenderError(
                    f"dataset {root} has two folders for one class, {found[child.name.lower()].name}/ and "
                    f"{child.name}/; merge them into one"
                )
            found[child.name.lower()] = child
    return found


def scan_dataset(root: str | Path, min_per_class: int = MIN_IMAGES_PER_CLASS) -> Dataset:
    """Find the labelled images of a dataset folder; refuse a folder that cannot be trained or evaluated on."""
    root = Path(root)
    if not root.exists():
        raise FaceGenderError(f"dataset folder not found: {root}")
    if not root.is_dir():
        raise FaceGenderError(f"dataset path is not a folder: {root}")
    classes = _class_folders(root)
    missing = [name for name in CLASS_NAMES if name not in classes]
    if missing:
        present = sorted(child.name for child in root.iterdir() if child.is_dir())
        raise FaceGenderError(
            f"dataset {root} has no {' or '.join(repr(m + '/') for m in missing)} folder "
            f"(found: {', '.join(present) or 'no subfolders'}); expected one subfolder per class: "
            "male/ and female/ (any letter case) holding jpg, jpeg, png, bmp or webp images"
        )
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(CLASS_NAMES):
        class_files = list(iter_image_files(classes[name]))  # a broken link is kept: named when it fails to load
        if len(class_files) < min_per_class:
            raise FaceGenderError(
                f"dataset {root}: class folder {classes[name].name}/ has {len(class_files)} image(s), and "
                f"{min_per_class} or more are needed; add images of that class."
            )
        files.extend(class_files)
        labels.extend([index] * len(class_files))
    dataset = Dataset(root=root, files=files, labels=np.asarray(labels, dtype=np.int64))
    dataset.columns = _read_labels_csv(root, dataset)
    return dataset


def _read_labels_csv(root: Path, dataset: Dataset) -> dict[str, list[str]]:
    """Columns of labels.csv (keyed by `file`, relative to root), aligned with dataset.files."""
    path = root / "labels.csv"
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's "CSV UTF-8" starts with a BOM
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
    except UnicodeDecodeError as exc:
        raise FaceGenderError(f"could not read {path}: it is not UTF-8 text ({exc}); save it as UTF-8 "
                              "(in Excel: CSV UTF-8)") from None  # fmt: skip
    except (OSError, csv.Error) as exc:
        raise FaceGenderError(f"could not read {path}: {exc}") from exc
    if "file" not in header:
        raise FaceGenderError(f"{path} needs a header row with a 'file' column (path relative to {root})")
    if not rows:
        raise FaceGenderError(f"{path} has a header but no rows; add one row per photo (file relative to {root}) "
                              "or delete the file")  # fmt: skip
    by_file = {row["file"].replace("\\", "/").lower(): row for row in rows}  # class folders may differ in case
    names = [name for name in rows[0] if name and name != "file"]
    columns: dict[str, list[str]] = {name: [] for name in names}
    for index in range(len(dataset)):
        row = by_file.get(dataset.relative(index).lower(), {})
        for name in names:
            columns[name].append(str(row.get(name) or "unknown"))
    if "age" in columns and "age_band" not in columns:  # ages are too many values to slice by: bands are not
        columns["age_band"] = [age_band(value) for value in columns["age"]]
    return columns


AGE_BANDS = ((0, "0-17"), (18, "18-29"), (30, "30-44"), (45, "45-59"), (60, "60+"))


def age_band(age: str) -> str:
    """'34' -> '30-44'; anything that is not an age -> 'unknown'."""
    try:
        years = float(age)
    except ValueError:
        return "unknown"
    if not 0 <= years < 150:
        return "unknown"
    return [name for start, name in AGE_BANDS if years >= start][-1]


def resolve_splits(data: str | Path, val: str | Path | None) -> tuple[Path, Path | None]:
    """`--data` may be a dataset or a folder holding train/ and val/ datasets."""
    data = Path(data)
    if val is None and (data / "train").is_dir():
        return data / "train", (data / "val") if (data / "val").is_dir() else None
    return data, Path(val) if val is not None else None


def split_train_val(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Stratified split that keeps one person's photos on one side when labels.csv has `identity`."""
    rng = np.random.default_rng(seed)
    identities = dataset.columns.get("identity")
    train_idx: list[int] = []
    val_idx: list[int] = []
    for label in (0, 1):
        members = np.flatnonzero(dataset.labels == label)
        groups: dict[str, list[int]] = {}
        for i in members:
            key = identities[i] if identities and identities[i] != "unknown" else f"#{i}"
            groups.setdefault(key, []).append(int(i))
        keys = sorted(groups)
        rng.shuffle(keys)
        target = max(1, round(len(members) * fraction))
        taken = 0
        for key in keys:
            if taken < target:
                val_idx.extend(groups[key])
                taken += len(groups[key])
            else:
                train_idx.extend(groups[key])
        if not any(dataset.labels[i] == label for i in train_idx):
            raise OptionError("too few images to split off a validation set; pass {val} DIR")
    return dataset.subset(sorted(train_idx)), dataset.subset(sorted(val_idx))


def overlap(a: Dataset, b: Dataset) -> list[str]:
    """Files whose bytes appear in both datasets (same size and content hash)."""
    import hashlib

    def digests(ds: Dataset) -> dict[str, str]:
        out = {}
        for path in ds.files:
            try:
                out[hashlib.sha1(path.read_bytes()).hexdigest()] = str(path)
            except OSError:
                continue
        return out

    first = digests(a)
    return [path for digest, path in digests(b).items() if digest in first]


def load_images(
    files: list[Path],
    size: int,
    crop: float,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    face_crops: bool = False,
    face_scale: float = FACE_FRAMING_SIDE,
    squares: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, list[int], list[ImageError]]:
    """Decode and prepare files in parallel threads (Pillow releases the GIL while decoding).

    With face_crops, each photo's face is found and framed as prediction frames it (detect.face_inputs, mode
    auto); a photo where no face is found keeps the whole-photo framing.
    Returns the stacked uint8 images of the files that could be read, their indices, and the errors. With a
    `squares` list, each kept image's square before the resize is appended to it at the photo's own
    resolution, or at `size` where that is smaller (a square of any side, uint8 RGB).
    """
    workers = workers or min(8, usable_cpus() * 2)
    arrays: list[np.ndarray] = []
    kept: list[int] = []
    errors: list[ImageError] = []

    detector = FaceDetector(threads=1) if face_crops else None

    def work(path: Path) -> tuple[np.ndarray, np.ndarray | None] | ImageError:
        faces = read_faces(path, size, crop, detector, "auto", True, True, face_scale)
        if isinstance(faces, ImageError):
            return faces
        face = faces[0]
        if squares is None:
            return face.image, None
        square = face.square if face.square is not None else face.image
        return face.image, (square.copy() if len(square) < size else prepare(square, size))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for index, result in enumerate(pool.map(work, files)):
            if progress is not None:
                progress(1)
            if isinstance(result, ImageError):
                errors.append(result)
            else:
                arrays.append(result[0])
                kept.append(index)
                if squares is not None and result[1] is not None:
                    squares.append(result[1])
    stacked = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), dtype=np.uint8)
    return stacked, kept, errors
