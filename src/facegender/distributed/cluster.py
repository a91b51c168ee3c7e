"""Reaching a Ray cluster, for batch prediction (distributed.predict) and training across workers
(distributed.train): Ray imported with a one-line hint when it is missing, a local cluster started or a running
one joined, and a failed Ray job said in one line."""

from __future__ import annotations

import logging
import re
from typing import Any

from facegender.errors import FaceGenderError
from facegender.system import usable_cpus

INSTALL = "pip install 'facegender[distributed]'"


def require_ray(what: str = "--engine ray needs Ray Data", module: str = "ray.data") -> Any:
    """The ray module, or one line saying how to install it. `module`: the part of Ray the caller needs (ray
    without its [data] extra lacks pyarrow and pandas, without [train] Ray Train's own dependencies)."""
    try:
        import importlib

        import ray

        importlib.import_module(module)
    except ImportError:
        raise FaceGenderError(f"{what}: install it with {INSTALL}") from None
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Start a local cluster (no address) or join one; True when this call started it (and must stop it)."""
    if ray.is_initialized():
        return False
    local = {"num_cpus": usable_cpus(), "include_dashboard": False} if address is None else {}
    try:
        setup = {"worker_process_setup_hook": "facegender.distributed.cluster.quiet_ray_train_cleaner"}
        ray.init(address=address or "local", logging_level=logging.WARNING, runtime_env=setup, **local)
    except Exception as exc:
        where = f"join the Ray cluster at {address}" if address else "start a local Ray cluster"
        raise FaceGenderError(f"could not {where}: {failure_reason(exc)}") from None
    return True


CLEANER_THREAD = "PlacementGroupCleanerMonitor"  # Ray Train's placement-group cleaner's thread (ray 2.60)
# Ray Train's loggers whose warnings are kept to errors in every Ray worker process (ray 2.60): the placement-group
# cleaner, and the controller's client of the autoscaling coordinator, which warns with a traceback whenever a
# resource request takes over 5 s ("if this only happens transiently during ... CPU being overloaded, it's safe to
# ignore"): on a local cluster there is no autoscaler, and on 2 busy cores it happened after a Ctrl-C.
QUIET_LOGGERS = (
    "ray.train.v2._internal.execution.controller.placement_group_cleaner",
    "ray.train.v2._internal.execution.scaling_policy.autoscaling_coordinator_client",
)


def quiet_ray_train_cleaner() -> None:
    """Run in every Ray worker process as it starts, for Ray Train's placement-group cleaner: it asks the State API
    about the training's controller every few seconds and, on a cluster without the dashboard (the local one
    started here), warns each time that it is unavailable; and when the cluster stops right after a Ctrl-C its
    thread dies with a traceback. Its warnings (and those of QUIET_LOGGERS' other logger) are kept to errors and
    that thread's end is silent; nothing else changes."""
    import threading

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.thread is None or args.thread.name != CLEANER_THREAD:
            previous(args)

    threading.excepthook = hook


def failure_reason(exc: BaseException) -> str:
    """One line for a failed Ray job: a facegender error's own message where a worker raised one (Ray carries it
    as text inside its RayTaskError / UserCodeException: the exception chain does not survive pickling), else
    the first line of the error."""
    found = re.findall(r"^facegender\.errors\.\w+: (.+)$", str(exc), flags=re.MULTILINE)
    if found:
        return found[-1]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
