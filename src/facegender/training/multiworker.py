"""One training run across several worker processes: every worker runs train.train under
tf.distribute.MultiWorkerMirroredStrategy, from the TF_CONFIG its launcher wrote (Ray Train's TensorflowTrainer:
distributed/train.py).

- The model's variables are mirrored: each worker holds a copy, and the gradients of every step are summed across
  workers (all-reduce) before the same update is applied everywhere, so the copies never differ.
- `batch_size` stays the global batch: tf.data splits each batch across the workers, each worker taking its own
  share of it (sharding by data: every worker draws the same epoch order from the same seed, and keeps its part).
- The photos are read, and in the `default` preset the lower backbone's views cached, on every worker: each needs
  the whole epoch's inputs to take its share. That part is not faster with more workers; the fitting is.
- The chief (rank 0) writes the run folder: history, checkpoints, plots, evaluation, model files. The others write
  the same files into a temporary folder of their own, removed at the end (by the launcher too, if they die); a
  resume restores every worker from the chief's checkpoint (the copies are the same), so `--resume` works as for
  one process.

Keras 3 (3.15, TensorFlow backend) fails with this strategy in `fit` (keras-team/keras#20585, ray-project/ray#47464):
(1) before the first step it reduces a distributed data batch across workers just to learn its shapes, which the
collective reduce refuses; (2) it averages each step's scalar metrics along axis 0, which a scalar lacks.
`patch_keras` replaces those two steps (shapes from this worker's part of the batch; the mean taken over
workers) and leaves single-process training untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facegender.config import Config

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


@dataclass(frozen=True)
class Worker:
    """This process's place in a multi-worker run."""

    rank: int  # 0: the chief, which writes the run folder
    count: int
    scratch: str | None = None  # where the other workers' folders go (default: the system's temporary folder)

    @property
    def chief(self) -> bool:
        return self.rank == 0


@contextlib.contextmanager
def worker_folder(run_dir: Path, worker: Worker | None) -> Iterator[Path]:
    """Where this process writes its run: the run folder itself for the chief (and a single process), a
    temporary folder, removed afterwards, for every other worker (inside `worker.scratch` when set, which the
    launcher removes too: a worker stopped by Ctrl-C or killed never reaches its own clean-up)."""
    if worker is None or worker.chief:
        yield run_dir
        return
    if worker.scratch:
        Path(worker.scratch).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"facegender-worker{worker.rank}-", dir=worker.scratch))
    try:
        yield folder / run_dir.name
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def start_strategy() -> tf.distribute.Strategy:
    """The multi-worker strategy of this process (from TF_CONFIG). TensorFlow requires it before any other
    TensorFlow operation of the process."""
    import tensorflow as tf

    patch_keras()
    tf.get_logger().setLevel("ERROR")  # the strategy's INFO lines about its devices
    configure_coordination(tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec())
    return tf.distribute.MultiWorkerMirroredStrategy()


HEARTBEAT_TIMEOUT_S = 600


def configure_coordination(cluster_spec: tf.train.ClusterSpec, heartbeat_timeout_s: int = HEARTBEAT_TIMEOUT_S) -> None:
    """Configure TensorFlow's coordination service as MultiWorkerMirroredStrategy would (it then keeps this one),
    with a patient heartbeat: by default a worker whose heartbeats stop for a few seconds fails the whole run, and
    a worker starved of CPU (Ray runs its workers at niceness 15: any other job on the machine comes first) does. Seen:
    a 2-worker training beside a test suite on this 2-core machine failed with "heartbeat timeout" in its ninth
    fine-tuning epoch. A worker that dies is still noticed at once: Ray Train watches its processes. TensorFlow has
    no public API for this setting (tensorflow/python/distribute/collective_all_reduce_strategy.py makes the same
    call)."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster_spec.num_tasks(job))
        for job in ("chief", "worker")
        if job in cluster_spec.jobs
    ]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(cluster_spec),
        coordinated_jobs=jobs,
        heartbeat_timeout_in_ms=heartbeat_timeout_s * 1000,
    )


def patch_keras() -> None:
    """Make Keras 3's TensorFlow trainer fit under MultiWorkerMirroredStrategy (see the module's docstring). Applied
    once; the patched steps behave as before for every other strategy and for none."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_facegender_multi_worker", False):
        return
    multi_worker = trainer._collective_all_reduce_multi_worker
    reduce_per_replica = trainer.reduce_per_replica
    maybe_symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def mean_over_workers(values: Any, strategy: tf.distribute.Strategy, reduction: str) -> Any:
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None) if trainer._is_per_replica_instance(v) else v, values
            )
        return reduce_per_replica(values, strategy, reduction)

    def build_from_local_batch(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not multi_worker(strategy):
            return maybe_symbolic_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:  # as Keras does: the first batch, for its shapes only
            batch = next(it)
            break
        distributed = tf.distribute.DistributedValues
        local = tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0] if isinstance(v, distributed) else v, batch
        )
        with strategy.scope():
            self._symbolic_build(data_batch=local)

    trainer.reduce_per_replica = mean_over_workers
    trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_local_batch
    trainer._facegender_multi_worker = True


def local_copy(model: keras.Model, config: Config) -> keras.Model:
    """The trained network as a plain Keras model (its variables not mirrored), for what follows the fit on the
    chief alone: Keras's predict would split a batch across workers that no longer take part."""
    from facegender.training.model import build_model

    copy = build_model(dataclasses.replace(config, backbone_weights="none"))
    copy.set_weights(model.get_weights())
    return copy


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Split the dataset across workers by element (each takes its part of every batch); a no-op in one process.
    The inputs are in-memory arrays, not files, so TensorFlow's default (by file) would only warn and do this."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
