"""Importing TensorFlow and Keras quietly: the only place outside the network code that starts TensorFlow, and
so inside training/, the one package that may import it (an import-linter contract in .ci/run checks that)."""

from __future__ import annotations

import os

VERBOSE_VARIABLE = "FACEGENDER_VERBOSE"  # set by `facegender --verbose`: TensorFlow imported as it is, chatter and all


def import_tensorflow() -> None:
    """Import TensorFlow and Keras with TensorFlow's C++ start-up lines hidden.

    TensorFlow 2.21 prints its oneDNN, absl and CPU-feature notices to file descriptor 2 before it reads
    TF_CPP_MIN_LOG_LEVEL, once at import and again at the first operation, around the progress a command should
    show. Both happen here with descriptor 2 pointed at a temporary file, which is replayed if the import fails.
    """
    import sys

    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return
    if os.environ.get(VERBOSE_VARIABLE):
        import keras
        import tensorflow  # noqa: F401

        return
    import tempfile

    if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):  # TensorFlow's spurious E-lines too (real errors raise)
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import warnings

    # Keras warns that fit's default shuffle=True is ignored for a tf.data input (ours is shuffled by design);
    # tf2onnx touches the removed np.object (a FutureWarning) while exporting
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed", category=UserWarning)
    warnings.filterwarnings("ignore", message=r"In the future `np.object`", category=FutureWarning)
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            import keras
            import tensorflow as tf

            keras.ops.add(tf.zeros(1), 1.0)  # the first operation: TensorFlow's second round of notices
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
