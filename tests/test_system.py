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


def test_tensorflow_imports_without_its_start_up_lines():
    """train and export show their own progress, not TensorFlow's oneDNN/absl/CPU notices (printed to file
    descriptor 2 before TF_CPP_MIN_LOG_LEVEL is read, once at import and again at the first operation)."""
    code = (
        "from facegender.training.tf_import import import_tensorflow; import_tensorflow(); import keras, numpy as np; "
        "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]); m.compile('adam', 'mse'); "
        "m.fit(np.zeros((4, 3)), np.zeros(4), verbose=0); print('trained')"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "trained", result.stderr
    assert result.stderr == ""


def test_verbose_shows_what_is_hidden_by_default(tmp_path):
    """`facegender --verbose` brings TensorFlow's own lines back, for debugging an install."""
    code = (
        "import os; os.environ['FACEGENDER_VERBOSE'] = '1'; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0'; "
        "from facegender.training.tf_import import import_tensorflow; import_tensorflow(); "
        "import keras; keras.ops.add(1.0, 1.0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and ("oneDNN" in result.stderr or "absl" in result.stderr), result.stderr
    from facegender.cli import build_parser

    assert build_parser().parse_args(["--verbose", "predict", "x.jpg"]).verbose is True
