"""Facts about the machine the code runs on."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on: a container or `taskset` limited to 2 cores of a large host gets 2,
    where os.cpu_count() would say how many the host has (and ONNX Runtime would start that many threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1
