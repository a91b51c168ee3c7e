"""Face detector recall and speed on labelled face photos (LFW-style: one centred face per photo).

    python benchmarks/detector.py ../shared/data/lfw-adverse/val ../shared/data/lfw-adverse/train

A photo counts as found when a detected box's centre lies within 15 % of the width and 20 % of the height
of the photo's centre (where these photos have their face); other boxes are counted as extra (background
faces or false detections). Prints recall per condition, extra boxes, milliseconds per photo (detection
only, one thread after decoding), and the framing of the found faces (photo side / box width, box centre
offset), from which images.FACE_FRAMING was set.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from collections import Counter
from pathlib import Path

import numpy as np


def found_box(boxes: list[tuple[int, int, int, int]], width: int, height: int) -> tuple[int, int, int, int] | None:
    for x, y, w, h in boxes:
        if abs(x + w / 2 - width / 2) < 0.15 * width and abs(y + h / 2 - height / 2) < 0.2 * height:
            return x, y, w, h
    return None


def measure(folder: Path, threads: int) -> dict:
    from facegender.faces.detect import FaceDetector
    from facegender.faces.images import load_image

    detector = FaceDetector(threads=threads)
    rows = list(csv.DictReader((folder / "labels.csv").open(encoding="utf-8")))
    found, total, extra = Counter(), Counter(), 0
    seconds = 0.0
    ratios, offsets_x, offsets_y = [], [], []
    for row in rows:
        image = load_image(folder / row["file"])
        height, width = image.shape[:2]
        start = time.perf_counter()
        faces = detector.detect(image)
        seconds += time.perf_counter() - start
        box = found_box([f.box for f in faces], width, height)
        condition = row.get("condition", "all")
        total[condition] += 1
        found[condition] += box is not None
        extra += len(faces) - (box is not None)
        if box is not None:
            x, y, w, h = box
            ratios.append(min(width, height) / w)
            offsets_x.append((width / 2 - (x + w / 2)) / w)
            offsets_y.append((height / 2 - (y + h / 2)) / w)
    n = sum(total.values())
    return {
        "folder": str(folder),
        "photos": n,
        "recall": round(sum(found.values()) / n, 4),
        "recall_by_condition": {c: round(found[c] / total[c], 3) for c in sorted(total)},
        "missed": n - sum(found.values()),
        "extra_boxes": extra,
        "ms_per_photo": round(1000 * seconds / n, 2),
        "framing": {
            "side_over_box_width_median": round(float(np.median(ratios)), 3),
            "centre_offset_x_over_width_median": round(float(np.median(offsets_x)), 3),
            "centre_offset_y_over_width_median": round(float(np.median(offsets_y)), 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="labelled folders with labels.csv")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = [measure(folder, args.threads) for folder in args.folders]
    print(f"machine: {platform.machine()}, {platform.processor() or 'unknown CPU'}, threads {args.threads}")
    conditions = " | ".join(results[0]["recall_by_condition"])
    print(f"| folder | photos | recall | missed | extra boxes | ms/photo | {conditions} |")
    print("|---" * (6 + len(results[0]["recall_by_condition"])) + "|")
    for r in results:
        by = " | ".join(f"{v:.3f}" for v in r["recall_by_condition"].values())
        print(f"| {r['folder']} | {r['photos']} | {r['recall']:.3f} | {r['missed']} | {r['extra_boxes']} | "
              f"{r['ms_per_photo']:.1f} | {by} |")  # fmt: skip
    for r in results:
        print(r["folder"], "framing:", r["framing"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
