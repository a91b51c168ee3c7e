"""Training across workers: `facegender train ... --workers N [--ray-address ADDR]`.

Ray Train's TensorflowTrainer starts N worker processes on the Ray cluster and writes each one's TF_CONFIG; each
runs the same training as `facegender train` (training.train) under tf.distribute.MultiWorkerMirroredStrategy
(training.multiworker: the global batch split across the workers, gradients summed, the run folder written by the
chief). A worker uses a GPU when the cluster has one for each worker and TensorFlow sees it.

Data folders and the run folder must be at the same paths on every machine (a shared filesystem); relative paths
are taken from the driver's current folder. A worker that fails fails the run (Ray does not restart it); the
chief's checkpoint keeps every completed epoch, and `facegender train --resume RUN_DIR --workers N` continues it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from facegender.config import Config
from facegender.distributed.cluster import connect, failure_reason, require_ray
from facegender.errors import FaceGenderError, InvalidOption


def train_on_ray(
    config: Config | None,
    data: list[str] | None,
    val: list[str] | None,
    out: str | Path,
    workers: int,
    address: str | None = None,
) -> Path:
    """Train `config` on `data` (validated on `val`) with `workers` Ray Train workers and write the run folder
    `out`; config None: resume the interrupted run in `out` (its data and config from its train_args.json)."""
    if workers < 1:
        raise InvalidOption("workers", "must be >= 1", workers)
    from facegender.training.tf_import import import_tensorflow

    import_tensorflow()  # before Ray Train's TensorFlow backend imports it, with its start-up lines
    ray = require_ray("--workers trains on Ray Train", "ray.train.tensorflow")
    from ray.train import RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    out = Path(os.path.abspath(out))
    settings = {
        "config": config,
        "data": [os.path.abspath(folder) for folder in data or []],
        "val": [os.path.abspath(folder) for folder in val] if val else None,
        "out": str(out),
    }
    started = connect(ray, address)
    storage = out.parent / f".{out.name}.ray"  # Ray Train's own records of the run; removed afterwards
    settings["scratch"] = str(storage / "workers")  # the other workers' copies of the run: removed with it
    try:
        resources = ray.cluster_resources()
        trainer = TensorflowTrainer(
            _worker_loop,
            train_loop_config=settings,
            scaling_config=ScalingConfig(
                num_workers=workers,
                use_gpu=resources.get("GPU", 0) >= workers,
                # the cluster's CPUs shared out: N workers on a 2-core machine start rather than wait for cores
                resources_per_worker={"CPU": max(0.01, resources.get("CPU", 1.0) / workers)},
            ),
            run_config=RunConfig(
                name="facegender-train",
                storage_path=str(storage),
                worker_runtime_env={"env_vars": _worker_environment()},
            ),
        )
        trainer.fit()
    except (FaceGenderError, KeyboardInterrupt):
        raise
    except SystemExit:
        # Ctrl-C: fit() installs Ray Train's own SIGINT handler, which aborts the workers; the driver's wait then
        # ends in SystemExit(1). Reported as the interrupt it is (exit 130, the command that resumes the run).
        raise KeyboardInterrupt from None
    except Exception as exc:
        raise FaceGenderError(f"training on Ray failed: {failure_reason(exc)}") from None
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if started:
            ray.shutdown()
    return out


def _worker_environment() -> dict[str, str]:
    """What the driver's environment says about TensorFlow's and facegender's verbosity, passed to the workers."""
    names = ("TF_CPP_MIN_LOG_LEVEL", "FACEGENDER_VERBOSE")
    return {name: os.environ[name] for name in names if name in os.environ}


def _worker_loop(settings: dict[str, Any]) -> None:
    """One Ray Train worker: the same training as one process, as worker `rank` of `count`."""
    import ray.train

    from facegender.training.multiworker import Worker
    from facegender.training.train import resume, train

    context = ray.train.get_context()
    worker = Worker(rank=context.get_world_rank(), count=context.get_world_size(), scratch=settings["scratch"])
    if settings["config"] is None:
        resume(settings["out"], worker=worker)
    else:
        train(settings["config"], settings["data"], settings["val"], settings["out"], worker=worker)
