"""Progress on stderr: bars (tqdm), shown on a terminal and silent in pipes and logs, and log lines."""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int, description: str) -> tqdm:
    """A progress bar for `total` images; use as a context manager and call .update(n)."""
    return tqdm(total=total, desc=description, unit="img", disable=None, leave=False, dynamic_ncols=True)


def log(message: str) -> None:
    """One line on stderr, flushed at once: stdout carries a command's result (train prints the run folder)."""
    print(message, file=sys.stderr, flush=True)
