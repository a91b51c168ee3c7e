"""Inference runtimes compared in one process: ONNX Runtime against LiteRT (float and int8) on the same images.

    python benchmarks/runtimes.py --models runs/parity/model.onnx runs/parity/model.tflite \\
        runs/parity/model-int8.tflite --images ../shared/data/lfw-adverse/val

Images are decoded and prepared once; the figure is the model alone, images/s at batch 1 and batch 32
(median of --repeats passes over the images, after a warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--limit", type=int, default=256, help="images used")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from facegender.data import load_images
    from facegender.imagefiles import iter_image_files
    from facegender.runtime.inference import Classifier

    files = list(iter_image_files(Path(args.images)))[: args.limit]
    rows = []
    for model in args.models:
        classifier = Classifier.load(model)
        images, _, _ = load_images(files, classifier.info.image_size, classifier.info.crop)
        row = {"model": model, "backend": classifier.backend}
        for batch in (1, 32):
            classifier.predict(images[:batch])  # warm-up
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                for i in range(0, len(images), batch):
                    classifier.predict(images[i : i + batch])
                times.append(time.perf_counter() - started)
            row[f"images_per_s_batch{batch}"] = round(len(images) / statistics.median(times), 1)
        rows.append(row)
    print(json.dumps({"machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "rows": rows}))
    print()
    print("| model | runtime | images/s, batch 1 | images/s, batch 32 |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['backend']} | {r['images_per_s_batch1']} | {r['images_per_s_batch32']} |")


if __name__ == "__main__":
    main()
