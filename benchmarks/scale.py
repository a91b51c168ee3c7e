"""Scale benchmark: `facegender predict` in this process against `--engine ray` with 1 and 2 workers on the same
photos, and the Ray driver's peak memory for a listing of a million paths.

    python benchmarks/scale.py                                   # 5,000 photos, 1,000,000 paths
    python benchmarks/scale.py --photos 200 --paths 10000        # a quick check that it runs
    python benchmarks/scale.py --folder ../shared/data/lfw-adverse/val --parts speed   # real photos

Photos are generated (a tenth of them matplotlib's grace_hopper.jpg portrait where matplotlib is installed, so
that faces are found and classified; the rest noise and shapes, no face) into --work. Each command runs as a user
runs it, a fresh process each time: the Ray runs start and stop their own local cluster, so their wall time holds
that overhead. photos/s is photos over wall time; for Ray the summary line's own photos/s (cluster start left out)
is shown beside it. Every Ray run's rows are checked against the local run's.

The memory part starts one Ray cluster here and runs the CLI as a separate driver that joins it, on a text
listing of generated paths (no such files: every row is an error row, the work is all listing, moving and writing
rows); its peak RSS (os.wait4) is the driver's alone. A small listing gives the baseline: a driver that listed the
paths itself would grow by about 100 bytes a path.

On a 2-core machine Ray cannot be faster than local predict (both use the two cores); the point is that the rows
are the same, the driver's memory stays flat and what the overhead is. Prints a JSON record and a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facegender.imagefiles import iter_image_files


def make_photos(folder: Path, count: int, seed: int = 0) -> Path:
    """`count` photos: every tenth the portrait (when matplotlib ships it), the rest 160x120 noise and shapes."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("matplotlib")
    portrait = Path(spec.origin).parent / "mpl-data/sample_data/grace_hopper.jpg" if spec and spec.origin else None
    rng = np.random.default_rng(seed)
    for i in range(count):
        path = folder / f"photo{i:06d}.jpg"
        if path.exists():
            continue
        if portrait is not None and portrait.is_file() and i % 10 == 0:
            path.write_bytes(portrait.read_bytes())
            continue
        image = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        x, y = (int(v) for v in rng.integers(10, 80, 2))
        draw.ellipse([x, y, x + 60, y + 40], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        image.save(path, quality=90)
    return folder


def facegender(args: list[str], log: Path, timeout: float) -> tuple[float, int, int, str]:
    """Run `python -m facegender ARGS`; (wall seconds, exit code, peak RSS in MiB of that process alone, stdout)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.monotonic()
    with open(log, "w") as out, open(log.with_suffix(".err"), "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "facegender", *args], stdout=out, stderr=err, env=env)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                process.wait(timeout=60)
                raise SystemExit(f"timed out: facegender {' '.join(args)}")
            time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if process.returncode not in (0, 1):  # 1: some inputs unreadable, the rest done
        raise SystemExit(f"facegender {' '.join(args)} failed:\n{log.with_suffix('.err').read_text()[-2000:]}")
    return wall, process.returncode, usage.ru_maxrss // 1024, log.read_text()


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    raise ValueError(path)


def speed(work: Path, photos: Path, count: int, model: list[str], detect: str, timeout: float) -> list[dict]:
    results = []
    local_out = work / "local.csv"
    wall, _, rss, _ = facegender(["predict", str(photos), *model, "--detect", detect, "--output", str(local_out),
                                  "--format", "csv"], work / "local.log", timeout)  # fmt: skip
    local_rows = read_rows(local_out)
    results.append({"engine": "local", "workers": None, "photos": count, "wall_s": round(wall, 1),
                    "photos_per_s": round(count / wall, 1), "in_run_photos_per_s": None, "peak_rss_mib": rss,
                    "rows": len(local_rows), "rows_equal_local": True})  # fmt: skip
    for workers in (1, 2):
        out = work / f"ray{workers}.csv"
        wall, _, rss, stdout = facegender(
            ["predict", str(photos), *model, "--detect", detect, "--engine", "ray", "--workers", str(workers),
             "--output", str(out)], work / f"ray{workers}.log", timeout,
        )  # fmt: skip
        summary = re.search(r"([0-9.]+) photos/s", stdout)
        rows = read_rows(out)
        results.append({"engine": "ray", "workers": workers, "photos": count, "wall_s": round(wall, 1),
                        "photos_per_s": round(count / wall, 1),
                        "in_run_photos_per_s": float(summary.group(1)) if summary else None, "peak_rss_mib": rss,
                        "rows": len(rows), "rows_equal_local": rows == local_rows})  # fmt: skip
    return results


def driver_memory(work: Path, counts: list[int], timeout: float) -> list[dict]:
    """Peak RSS of a driver joining a running cluster, for text listings of `counts` generated paths."""
    import ray

    # sets RAY_AUTH_MODE=token in os.environ: the drivers that join find the cluster's token (~/.ray/auth_token)
    ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, logging_level="WARNING")
    try:
        address = ray.get_runtime_context().gcs_address
        results = []
        for count in counts:
            listing = work / f"paths{count}.txt"
            with listing.open("w") as handle:
                for i in range(count):
                    handle.write(f"/nonexistent/shard{i % 1000:03d}/photo{i:08d}.jpg\n")
            out = work / f"listing{count}.parquet"
            wall, _, rss, stdout = facegender(["predict", str(listing), "--engine", "ray", "--ray-address", address,
                                               "--no-detect", "--output", str(out)], work / f"listing{count}.log",
                                              timeout)  # fmt: skip
            results.append({"paths": count, "driver_peak_rss_mib": rss, "wall_s": round(wall, 1),
                            "summary": stdout.strip().splitlines()[-1] if stdout.strip() else ""})  # fmt: skip
        return results
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=5000, help="generated photos for the speed runs")
    parser.add_argument("--paths", type=int, default=1_000_000, help="generated paths in the big listing")
    parser.add_argument("--small-paths", type=int, default=1000, dest="small_paths", help="the baseline listing")
    parser.add_argument("--folder", help="time these photos (a folder, searched recursively) instead of generated ones")
    parser.add_argument("--model", help="model for every run (default: the bundled one)")
    parser.add_argument("--detect", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--work", help="folder for photos and outputs (default: a temporary one, removed)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per command")
    parser.add_argument("--parts", nargs="+", default=["speed", "memory"], choices=("speed", "memory"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.work or temporary)
        work.mkdir(parents=True, exist_ok=True)
        model = ["--model", args.model] if args.model else []
        record = {"machine": f"{platform.machine()} {len(os.sched_getaffinity(0))} cores, Python "
                             f"{platform.python_version()}", "speed": [], "driver_memory": []}  # fmt: skip
        if "speed" in args.parts:
            if args.folder:
                photos = Path(args.folder)
                count = sum(1 for _ in iter_image_files(photos))
            else:
                photos, count = make_photos(work / "photos", args.photos), args.photos
            record["speed"] = speed(work, photos, count, model, args.detect, args.timeout)
        if "memory" in args.parts:
            record["driver_memory"] = driver_memory(work, [args.small_paths, args.paths], args.timeout)
    print(json.dumps(record, indent=2))
    print("\n| engine | workers | photos | wall s | photos/s (wall) | photos/s (in run) | peak RSS MiB | "
          "rows = local |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in record["speed"]:
        same = "yes" if r["rows_equal_local"] else "NO"
        print(
            f"| {r['engine']} | {r['workers'] or ''} | {r['photos']} | {r['wall_s']} | {r['photos_per_s']} | "
            f"{r['in_run_photos_per_s'] or ''} | {r['peak_rss_mib']} | {same} |"
        )
    print("\n| paths in the listing | driver peak RSS MiB | wall s |")
    print("|---|---|---|")
    for r in record["driver_memory"]:
        print(f"| {r['paths']:,} | {r['driver_peak_rss_mib']} | {r['wall_s']} |")


if __name__ == "__main__":
    main()
