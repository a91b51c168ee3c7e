"""Speed benchmark: `facegender predict` (ONNX Runtime) against Keras on the same model, same run.

    python benchmarks/speed.py --model runs/train --images ../shared/data/lfw-adverse/val

Measures, with the machine named:
1. folder throughput: `facegender predict FOLDER --no-detect` (a new process: start-up, decoding and inference
   included; each photo one face crop, as Keras is fed) against Keras `model.predict` of the same model.keras
   at batch 32 on the already-prepared images; and, for the cost of face detection, the default
   `facegender predict FOLDER` (`--detect auto`);
   Also the model alone under ONNX Runtime on the same prepared images, and the fixed cost of a predict
   process (one image, --no-detect): together the most a folder run could reach (the "ceiling");
2. cold single image: wall time of a new `facegender predict one.jpg` process (default: with detection)
   against a new process that imports Keras, loads model.keras and predicts the same image (median of
   --repeats runs each).
Prints a JSON record and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

KERAS_COLD = """
import sys, numpy as np, keras
from facegender.runtime.schema import read_metadata
from facegender.faces.images import load_prepared
from pathlib import Path
path = Path(sys.argv[1]); info = read_metadata(path)
model = keras.models.load_model(path, compile=False)
x = load_prepared(sys.argv[2], info.image_size, info.crop)[None].astype('float32')
print(float(model.predict(x, verbose=0)[0, 0]))
"""


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=ENV)
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr}")
    return elapsed


def model_throughputs(keras_file: Path, onnx_file: Path, files: list[Path]) -> tuple[float, float]:
    """Images/s of the model alone, on the same prepared images at batch 32: Keras `model.predict`, then ONNX
    Runtime (as `facegender predict` runs it). The second is the most a predict process could reach."""
    import keras
    import numpy as np

    from facegender.data import load_images
    from facegender.runtime.inference import Classifier
    from facegender.runtime.schema import read_metadata

    info = read_metadata(keras_file)
    model = keras.models.load_model(keras_file, compile=False)
    images, _, _ = load_images(files, info.image_size, info.crop)
    batch = images.astype(np.float32)
    model.predict(batch[:32], batch_size=32, verbose=0)  # warm-up: graph tracing is not throughput
    started = time.perf_counter()
    model.predict(batch, batch_size=32, verbose=0)
    keras_ips = len(batch) / (time.perf_counter() - started)

    classifier = Classifier.load(onnx_file)
    classifier.predict(images[:32])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(images), 32):
        classifier.predict(images[i : i + 32])
    return keras_ips, len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder holding model.keras and model.onnx")
    parser.add_argument("--images", required=True, help="folder of images (e.g. lfw-adverse/val)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run = Path(args.model)
    keras_file, onnx_file = run / "model.keras", run / "model.onnx"
    for needed in (keras_file, onnx_file):
        if not needed.is_file():
            raise SystemExit(f"missing {needed}: pass a run folder written by facegender train")
    from facegender.imagefiles import iter_image_files

    files = list(iter_image_files(Path(args.images)))
    cli = [sys.executable, "-m", "facegender", "predict"]

    folder = [*cli, args.images, "--model", str(onnx_file), "--format", "csv"]
    onnx_ips = len(files) / statistics.median(wall([*folder, "--no-detect"]) for _ in range(args.repeats))
    detect_ips = len(files) / statistics.median(wall(folder) for _ in range(args.repeats))
    keras_ips, runtime_ips = model_throughputs(keras_file, onnx_file, files)

    one = str(files[0])
    cold_onnx = statistics.median(wall([*cli, one, "--model", str(onnx_file)]) for _ in range(args.repeats))
    # The fixed cost of any predict process (interpreter, imports, model load, one image): with it and the
    # runtime's own speed, the most a folder run of this size could reach.
    fixed = statistics.median(wall([*cli, one, "--model", str(onnx_file), "--no-detect"]) for _ in range(args.repeats))
    ceiling_ips = len(files) / (fixed + len(files) / runtime_ips)
    cold_keras = statistics.median(
        wall([sys.executable, "-c", KERAS_COLD, str(keras_file), one]) for _ in range(args.repeats)
    )
    record = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "images": len(files),
        "predict_folder_images_per_s": round(onnx_ips, 1),
        "predict_folder_with_detection_images_per_s": round(detect_ips, 1),
        "keras_predict_images_per_s": round(keras_ips, 1),
        "throughput_ratio": round(onnx_ips / keras_ips, 2),
        "onnxruntime_model_only_images_per_s": round(runtime_ips, 1),
        "predict_process_fixed_s": round(fixed, 3),
        "folder_ceiling_images_per_s": round(ceiling_ips, 1),
        "ceiling_ratio": round(ceiling_ips / keras_ips, 2),
        "cold_predict_one_s": round(cold_onnx, 3),
        "cold_keras_one_s": round(cold_keras, 3),
        "cold_ratio": round(cold_keras / cold_onnx, 2),
    }
    print(json.dumps(record))
    print()
    print("| measure | facegender predict (ONNX Runtime) | Keras | ratio |")
    print("|---|---|---|---|")
    print(
        f"| folder of {len(files)} images, images/s | {onnx_ips:.1f} (whole CLI process, --no-detect) | "
        f"{keras_ips:.1f} (model.predict, batch 32) | {onnx_ips / keras_ips:.1f}x |"
    )
    print(f"| same, with face detection (--detect auto), images/s | {detect_ips:.1f} | | |")
    print(
        f"| model alone on prepared images, batch 32, images/s | {runtime_ips:.1f} | {keras_ips:.1f} | "
        f"{runtime_ips / keras_ips:.1f}x |"
    )
    print(
        f"| folder ceiling: {fixed:.2f} s fixed per process + the model alone, images/s | {ceiling_ips:.1f} | | "
        f"{ceiling_ips / keras_ips:.1f}x |"
    )
    cold = f"{cold_onnx:.2f} | {cold_keras:.2f} | {cold_keras / cold_onnx:.1f}x"
    print(f"| one image, cold process (with detection), s | {cold} |")
    print(f"\nmachine: {record['machine']}")


if __name__ == "__main__":
    main()
