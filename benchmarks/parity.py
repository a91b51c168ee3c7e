"""Export parity: a run's Keras model against its ONNX, TFLite and int8 TFLite exports on a labelled set.

    python benchmarks/parity.py --model runs/default-ship --data ../shared/data/lfw-adverse/val \\
        --calibration ../shared/data/lfw-adverse/train

Prints, per format: file size, max |p(male) - Keras's|, labels that differ from Keras's, and macro-F1 at the
model's threshold (JSON and a markdown table). The exports are written into --out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder with model.keras and model.json")
    parser.add_argument("--data", required=True, help="labelled folder (male/, female/)")
    parser.add_argument("--calibration", required=True, help="training images for int8 calibration")
    parser.add_argument("--out", help="folder for the exports (default: a temporary folder)")
    args = parser.parse_args()

    from facegender.data import load_images, scan_dataset
    from facegender.evaluation.metrics import macro_f1, predict_labels
    from facegender.runtime.inference import Classifier
    from facegender.runtime.schema import ModelInfo
    from facegender.training.export import calibration_images, export_model
    from facegender.training.model import load_keras_model

    run = Path(args.model)
    metadata = json.loads((run / "model.json").read_text())
    info = ModelInfo.from_dict(metadata, str(run / "model.json"))
    dataset = scan_dataset(args.data)
    images, kept, _ = load_images(dataset.files, info.image_size, info.crop)
    labels = dataset.labels[kept]
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp())
    keras_model = load_keras_model(run / "model.keras")
    files = {
        "keras": run / "model.keras",
        "onnx": export_model(keras_model, out / "model.onnx", metadata, "onnx"),
        "tflite": export_model(keras_model, out / "model.tflite", metadata, "tflite"),
        "tflite-int8": export_model(
            keras_model, out / "model-int8.tflite", metadata, "tflite-int8",
            calibration_images(args.calibration, info, 200),
        ),
    }  # fmt: skip
    probs = {name: Classifier.load(path).predict(images) for name, path in files.items()}
    reference = probs["keras"]
    rows = []
    for name, p in probs.items():
        rows.append(
            {
                "format": name,
                "size_mb": round(files[name].stat().st_size / 2**20, 2),
                "max_abs_diff": float(np.max(np.abs(p - reference))),
                "labels_differing": int(
                    np.sum(predict_labels(p, info.threshold) != predict_labels(reference, info.threshold))
                ),
                "macro_f1": macro_f1(labels, predict_labels(p, info.threshold)),
            }
        )
    print(json.dumps({"images": len(labels), "threshold": info.threshold, "rows": rows}))
    print()
    print("| format | size MB | max abs diff vs Keras | labels differing | macro-F1 |")
    print("|---|---|---|---|---|")
    for r in rows:
        diff = f"{r['max_abs_diff']:.2e}"
        print(f"| {r['format']} | {r['size_mb']} | {diff} | {r['labels_differing']} | {r['macro_f1']:.4f} |")


if __name__ == "__main__":
    main()
