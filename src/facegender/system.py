"""Facts about the machine the code runs on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def usable_cpus() -> int:
    """The CPUs this process may run on: a container or `taskset` limited to 2 cores of a large host gets 2,
    where os.cpu_count() would say how many the host has (and ONNX Runtime would start that many threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with `threads` intra-op threads (default: the usable CPUs), one inter-op thread
    and its warnings off. The face detector and the classifier both run through this."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cpus()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
