"""Accuracy benchmark: train and evaluate presets over several seeds with the real CLI.

    python benchmarks/accuracy.py --presets seed default --seeds 1 2 3 \\
        --train ../shared/data/lfw-adverse/train --val ../shared/data/lfw-adverse/val --out runs/bench

Prints a markdown table (mean ± std over seeds) and writes `results.json` into --out: per run the
accuracy, macro-F1, per-class metrics, per-condition accuracy, threshold and wall time.
Protocol: ../shared/BENCHMARK.md (every setting chosen on val only; report beside the seed preset).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-adverse"


def run_one(preset: str, seed: int, train: list[str], val: str, out: Path, extra: list[str]) -> dict:
    run_dir = out / f"{preset}-seed{seed}"
    if not (run_dir / "model.keras").is_file():  # written last: a finished run, reused
        command = [sys.executable, "-m", "facegender", "train", "--preset", preset, "--seed", str(seed),
                   "--data", *train, "--val", val, "--out", str(run_dir), *extra]  # fmt: skip
        started = time.time()
        result = subprocess.run(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if result.returncode not in (0, 1):  # 1: some photos unreadable (named), the run complete
            raise SystemExit(f"training failed: {' '.join(command)}")
        wall = time.time() - started
    else:
        wall = None  # reused an existing run: its own recorded training time is reported below
    meta = json.loads((run_dir / "model.json").read_text())
    metrics = json.loads((run_dir / "val_evaluation" / "metrics.json").read_text())
    return {
        "preset": preset,
        "seed": seed,
        "run": str(run_dir),
        "wall_time_s": round(wall, 1) if wall is not None else meta["training"]["wall_time_s"],
        "train_time_s": meta["training"]["wall_time_s"],
        "epochs_run": meta["training"]["epochs_run"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "threshold": metrics["threshold"],
        "per_class": metrics["per_class"],
        "per_condition": {k: v["accuracy"] for k, v in metrics["slices"].get("condition", {}).items()},
    }


def summarise(runs: list[dict]) -> str:
    def ms(values: list[float], digits: int = 4) -> str:
        return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"

    presets = list(dict.fromkeys(r["preset"] for r in runs))
    conditions = sorted({c for r in runs for c in r["per_condition"]})
    lines = [
        "| preset | runs | accuracy | macro-F1 | female P | female R | worst condition | wall time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for preset in presets:
        rs = [r for r in runs if r["preset"] == preset]
        worst = (
            min(conditions, key=lambda c: np.mean([r["per_condition"].get(c, 1.0) for r in rs])) if conditions else "-"
        )
        worst_acc = np.mean([r["per_condition"].get(worst, np.nan) for r in rs]) if conditions else float("nan")
        lines.append(
            f"| {preset} | {len(rs)} | {ms([r['accuracy'] for r in rs])} | {ms([r['macro_f1'] for r in rs])} | "
            f"{ms([r['per_class']['female']['precision'] for r in rs], 3)} | "
            f"{ms([r['per_class']['female']['recall'] for r in rs], 3)} | {worst} {worst_acc:.3f} | "
            f"{ms([r['wall_time_s'] for r in rs], 0)} |"
        )
    lines += ["", "| preset | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
    for preset in presets:
        rs = [r for r in runs if r["preset"] == preset]
        lines.append(
            f"| {preset} | "
            + " | ".join(f"{np.mean([r['per_condition'][c] for r in rs]):.3f}" for c in conditions)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["seed", "default"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--train", nargs="+", default=[str(SHARED / "train")])
    parser.add_argument("--val", default=str(SHARED / "val"))
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more flags for facegender train")
    args = parser.parse_args()
    for folder in [*args.train, args.val]:
        if not Path(folder).is_dir():
            raise SystemExit(f"missing dataset {folder}: see ../shared/README.md")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [run_one(p, s, args.train, args.val, out, args.extra) for p in args.presets for s in args.seeds]
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "train": args.train,
        "val": args.val,
        "runs": runs,
    }
    (out / "results.json").write_text(json.dumps(record, indent=2))
    table = summarise(runs)
    (out / "results.md").write_text(table + "\n")
    print(json.dumps(record))
    print()
    print(table)


if __name__ == "__main__":
    main()
