"""Progress bars on stderr (tqdm), shown on a terminal and silent in pipes and logs."""

from __future__ import annotations

from tqdm import tqdm


def bar(total: int, description: str) -> tqdm:
    """A progress bar for `total` images; use as a context manager and call .update(n)."""
    return tqdm(total=total, desc=description, unit="img", disable=None, leave=False, dynamic_ncols=True)
