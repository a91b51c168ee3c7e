"""Reference probe: how well a network pretrained on millions of faces reads gender from these photos.

dlib's ResNet face-recognition network (128-number embeddings; its weights ship in the `face-recognition-models`
wheel, so it runs offline) embeds every photo, and a logistic regression fitted on the training embeddings
classifies the validation ones. It is not part of facegender (the shipped model is a MobileNetV2); it measures
what a face-pretrained representation could add (benchmarks/README.md). Needs, besides the eval extra:

    pip install dlib-bin face-recognition-models
    python benchmarks/face_teacher_probe.py --train ../shared/data/lfw-adverse/train \\
        --val ../shared/data/lfw-adverse/val --out runs/face-teacher-probe

Each photo is framed as the training photos are (images.frame_face: the face box about 1/2.38 of the square
photo, its centre 0.11 box widths below the middle); dlib's 5-point landmark model aligns the face in that box.
Prints a markdown line and writes results.json into --out.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from facegender.data import scan_dataset
from facegender.errors import FaceGenderError, ImageError
from facegender.faces.images import FACE_FRAMING_RAISE, FACE_FRAMING_SIDE, load_image, prepare

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-adverse"
SIDE = 250  # the framed photo's side before alignment (LFW's own size)


def face_box(side: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the face in a square photo framed like the training photos."""
    width = side / FACE_FRAMING_SIDE
    centre_x, centre_y = side / 2, side / 2 + FACE_FRAMING_RAISE * width
    half = width / 2
    return round(centre_x - half), round(centre_y - half), round(centre_x + half), round(centre_y + half)


@functools.cache
def models() -> tuple:
    """dlib's 5-point landmark model and face-recognition network, loaded once per worker process."""
    import dlib
    import face_recognition_models as files

    return (
        dlib.shape_predictor(files.pose_predictor_five_point_model_location()),
        dlib.face_recognition_model_v1(files.face_recognition_model_location()),
    )


def embed(paths: list[str]) -> np.ndarray:
    import dlib

    predictor, network = models()
    rows = []
    for path in paths:
        try:
            image = np.ascontiguousarray(prepare(load_image(path), SIDE))
        except ImageError as exc:  # re-raised as a plain FaceGenderError, which crosses the process boundary
            raise FaceGenderError(f"{exc}; fix or remove the file") from None
        shape = predictor(image, dlib.rectangle(*face_box(SIDE)))
        rows.append(np.asarray(network.compute_face_descriptor(image, shape, 0), dtype=np.float32))
    return np.stack(rows)


def embed_all(files: list[Path]) -> np.ndarray:
    """dlib holds the GIL while it computes: chunks of photos go to one process per core."""
    chunks = [[str(f) for f in files[i : i + 64]] for i in range(0, len(files), 64)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return np.concatenate(list(pool.map(embed, chunks)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", default=str(SHARED / "train"))
    parser.add_argument("--val", default=str(SHARED / "val"))
    parser.add_argument("--out", default="runs/face-teacher-probe")
    args = parser.parse_args()
    try:
        import dlib  # noqa: F401
        import face_recognition_models  # noqa: F401
    except ImportError as exc:
        print(f"needs dlib's face models ({exc}): pip install dlib-bin face-recognition-models", file=sys.stderr)
        return 2
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from facegender.evaluation.metrics import classification_metrics, slice_metrics

    try:
        train_set, val_set = scan_dataset(args.train), scan_dataset(args.val, min_per_class=1)
        started = time.time()
        x_train, x_val = embed_all(train_set.files), embed_all(val_set.files)
    except FaceGenderError as exc:  # a missing folder or an unreadable photo: say which, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.time() - started
    model = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced").fit(x_train, train_set.labels)
    p_male = model.predict_proba(x_val)[:, 1]
    report = classification_metrics(val_set.labels, p_male, 0.5)  # threshold 0.5: nothing tuned on val
    report["auc"] = float(roc_auc_score(val_set.labels, p_male))
    report["slices"] = slice_metrics(val_set.labels, p_male, 0.5, val_set.columns)
    report["embedding_seconds"] = round(seconds, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    female = report["per_class"]["female"]
    print(
        f"| dlib face embeddings + logistic regression | {report['macro_f1']:.4f} | {report['accuracy']:.4f} | "
        f"{female['precision']:.3f} / {female['recall']:.3f} | AUC {report['auc']:.4f} | "
        f"embedded {len(train_set) + len(val_set)} photos in {seconds:.0f} s |"
    )
    for column, values in report["slices"].items():
        print(f"{column}: " + ", ".join(f"{value} {m['accuracy']:.3f}" for value, m in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
