"""Load benchmark of `facegender serve`: N requests at concurrency C against a live server on 127.0.0.1.

    python benchmarks/serve_load.py --requests 2000 --concurrency 16 --images ../shared/data/lfw-adverse/val

Starts the server itself (bundled model unless --model), sends POST /predict with images from --images
(or generated ones), bounded in count and time, then stops it. Prints throughput, p50/p99 latency and
the error count as JSON and a markdown table. Only loopback is ever targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def payloads(folder: str | None, count: int = 64) -> list[bytes]:
    if folder:
        from facegender.imagefiles import iter_image_files

        files = list(iter_image_files(Path(folder)))[:count]
        if files:
            return [f.read_bytes() for f in files]
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (250, 250, 3), dtype=np.uint8)).save(buffer, "JPEG")
        out.append(buffer.getvalue())
    return out


async def load(url: str, bodies: list[bytes], requests: int, concurrency: int, time_limit: float) -> dict:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    deadline = time.perf_counter() + time_limit

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            try:
                response = await client.post(url, files={"file": (f"{i}.jpg", bodies[i % len(bodies)], "image/jpeg")})
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--images", help="folder of images to send (default: generated JPEGs)")
    parser.add_argument("--model", help="model for the server (default: the bundled model)")
    parser.add_argument("--workers", type=int, default=2, help="the server's inference threads")
    parser.add_argument("--time-limit", type=float, default=600.0, help="stop sending after this many seconds")
    args = parser.parse_args()

    port = free_port()
    command = [sys.executable, "-m", "facegender", "serve", "--port", str(port), "--workers", str(args.workers)]
    if args.model:
        command += ["--model", args.model]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"server did not start: {server.stderr.read().decode()[-2000:] if server.stderr else ''}")
        health = httpx.get(base + "/health").json()
        result = asyncio.run(load(base + "/predict", payloads(args.images), args.requests, args.concurrency,
                                  args.time_limit))  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "model": health.get("model"),
        "concurrency": args.concurrency,
        "server_workers": args.workers,
        **result,
    }
    print(json.dumps(record))
    print()
    print("| requests | concurrency | errors | requests/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    print(f"| {result['requests']} | {args.concurrency} | {result['errors']} | {result['requests_per_s']} | "
          f"{result['p50_ms']} | {result['p99_ms']} |")  # fmt: skip


if __name__ == "__main__":
    main()
