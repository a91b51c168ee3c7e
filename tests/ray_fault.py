"""A worker killed mid-run, for tests/test_distributed.py: loaded into every Ray worker of the test's cluster as its
worker_process_setup_hook (not a test module: pytest does not collect it).

Once the folder that FACEGENDER_TEST_KILL names exists (the test "arms" it), the first Predictor actor to finish
its second block dies by SIGKILL, as the kernel's OOM killer would kill it: after the work, before its rows are
returned. Only one actor dies per armed folder (a file made with O_EXCL claims the kill), so Ray's restarted actor
and the retried block then run to the end.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "FACEGENDER_TEST_KILL"


def kill_once_mid_run() -> None:
    from facegender.distributed import predict

    original = predict.Predictor.__call__

    def call(self, batch):
        self.test_calls = getattr(self, "test_calls", 0) + 1
        rows = original(self, batch)
        if self.test_calls == 2 and _claim():
            os.kill(os.getpid(), signal.SIGKILL)
        return rows

    predict.Predictor.__call__ = call


def _claim() -> bool:
    folder = os.environ.get(KILL_ENV)
    if not folder or not os.path.isdir(folder):
        return False
    try:
        os.close(os.open(os.path.join(folder, "killed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
