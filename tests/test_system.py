"""Thread counts follow the CPUs the process may use, not the host's count."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_usable_cpus_follows_the_processs_cpu_affinity():
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " \
           "from facegender.system import usable_cpus; print(usable_cpus())"  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "1"
    from facegender.system import usable_cpus

    assert usable_cpus() == len(os.sched_getaffinity(0))
