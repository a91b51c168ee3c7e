"""Which face framing should every verb use? A frozen-feature probe across the three domains.

For each frame scale (the side of the square around the detected face, in BlazeFace box widths), every photo is
framed by `images.frame_face` around its best detected face (the whole photo where none is found), resized to
--size, and pushed through the frozen ImageNet MobileNetV2; a logistic regression fitted on the training photos of
all sources together is scored on each validation set. Detection runs once per photo; only the framing changes.

    python benchmarks/framing.py --train ../shared/data/lfw-adverse/train ../shared/data/celeba-gender/train \
        ../shared/data/utkface/train --val ../shared/data/lfw-adverse/val ../shared/data/celeba-gender/val \
        ../shared/data/utkface/val --scales 1.2 1.5 1.8 2.1 2.38

Prints a JSON record and a markdown table (macro-F1 per validation set, their mean and worst).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def detect_all(files: list[Path]) -> list[tuple[np.ndarray, tuple[int, int, int, int] | None]]:
    """(image, best face extent or None) for each file."""
    from facegender.faces.detect import FaceDetector
    from facegender.faces.images import load_image

    detector = FaceDetector(threads=1)

    def work(path: Path):  # type: ignore[no-untyped-def]
        image = load_image(path)
        faces = detector.detect(image, crop_first=False)
        return image, (faces[0].extent if faces else None)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(work, files))


def frame_all(items, scale: float, size: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    from facegender.faces.images import frame_face, prepare

    out = []
    for image, box in items:
        framed = image if box is None else frame_face(image, box, 4 * size, scale)
        out.append(prepare(framed, size))
    return np.stack(out)


def sample(folder: str, limit: int, seed: int):  # type: ignore[no-untyped-def]
    from facegender.data import scan_dataset

    dataset = scan_dataset(folder)
    if limit and len(dataset) > limit:
        dataset = dataset.subset(sorted(np.random.default_rng(seed).choice(len(dataset), limit, replace=False)))
    return dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="+", required=True)
    parser.add_argument("--val", nargs="+", required=True)
    parser.add_argument("--scales", nargs="+", type=float, default=[1.2, 1.5, 1.8, 2.1, 2.38])
    parser.add_argument("--per-source", type=int, default=1500, help="training photos drawn from each source")
    parser.add_argument("--size", type=int, default=160)
    args = parser.parse_args()
    missing = [f for f in [*args.train, *args.val] if not Path(f).is_dir()]
    if missing:
        sys.exit(f"missing data folder(s): {', '.join(missing)} (see ../shared/README.md)")

    import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from facegender.training.model import resolve_backbone_weights

    backbone = keras.applications.MobileNetV2(
        input_shape=(args.size, args.size, 3),
        include_top=False,
        pooling="avg",
        weights=resolve_backbone_weights("imagenet"),
    )

    def features(images: np.ndarray) -> np.ndarray:
        return backbone.predict(images.astype(np.float32) / 127.5 - 1.0, batch_size=64, verbose=0)

    train_sets = [sample(f, args.per_source, 0) for f in args.train]
    val_sets = [sample(f, 0, 0) for f in args.val]
    train_items = [detect_all(ds.files) for ds in train_sets]
    val_items = [detect_all(ds.files) for ds in val_sets]
    no_face = {f: sum(box is None for _, box in items) for f, items in zip(args.val, val_items, strict=True)}
    y_train = np.concatenate([ds.labels for ds in train_sets])
    record: dict = {"size": args.size, "per_source": args.per_source, "val_no_face": no_face, "scales": {}}
    for scale in args.scales:
        x_train = np.concatenate([features(frame_all(items, scale, args.size)) for items in train_items])
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000, class_weight="balanced"))
        probe.fit(x_train, y_train)
        scores = {}
        for folder, ds, items in zip(args.val, val_sets, val_items, strict=True):
            predicted = probe.predict(features(frame_all(items, scale, args.size)))
            scores[folder] = round(float(f1_score(ds.labels, predicted, average="macro")), 4)
        values = list(scores.values())
        record["scales"][scale] = {**scores, "mean": round(float(np.mean(values)), 4), "worst": min(values)}
        print(f"scale {scale}: {record['scales'][scale]}", file=sys.stderr, flush=True)
    print(json.dumps(record, indent=2))
    names = [Path(f).parent.name + "/" + Path(f).name for f in args.val]
    print("\n| frame scale | " + " | ".join(names) + " | mean | worst |")
    print("|---" * (len(names) + 3) + "|")
    for scale, row in record["scales"].items():
        cells = [f"{row[f]:.3f}" for f in args.val]
        print(f"| {scale} | " + " | ".join(cells) + f" | {row['mean']:.3f} | {row['worst']:.3f} |")


if __name__ == "__main__":
    main()
