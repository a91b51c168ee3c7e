"""Two ways to feed the two-phase fit (training.fit), chosen by config.cached_views.

- streaming (cached_views 0, the seed's way): every batch augmented on the fly by Keras layers and run through
  the whole network;
- cached (cached_views > 0): the frozen lower backbone run once on that many augmented views of every photo,
  then only the layers above config.cache_layer trained, on those activations, mixed up when config.mixup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from facegender.config import Config
from facegender.errors import FaceGenderError
from facegender.progress import bar, log
from facegender.training.fit import Feed, Session, fit_phases
from facegender.training.inputs import TrainingData
from facegender.training.multiworker import shard_by_data

if TYPE_CHECKING:  # imported where used: TensorFlow starts once training has read its photos (train.train)
    import keras
    import tensorflow as tf


def fit_streaming(session: Session, model: keras.Model, data: TrainingData) -> None:
    """The seed's way: every batch is augmented on the fly and runs through the whole network."""
    from facegender.training.augment import build_augmenter

    config = session.config
    augmenter = build_augmenter(config, config.seed)
    steps = data.steps(config.batch_size)

    def make_train(epochs: int) -> tf.data.Dataset:
        batches = _batches(data.x_train, data.y_train, data.indices, config.batch_size, augmenter, config.seed)
        return batches.repeat(epochs)

    val_ds = _batches(data.x_val, data.y_val, np.arange(len(data.y_val)), config.batch_size)
    fit_phases(session, model, Feed(model, config.trainable_layers, make_train, val_ds, steps))


def _batches(
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    batch_size: int,
    augmenter: keras.Sequential | None = None,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of (float32 RGB 0-255 images, float labels) of images[indices], gathered from the in-memory uint8
    array; shuffled every epoch with a shuffle_seed, augmented with an augmenter."""
    import tensorflow as tf

    images_t = tf.constant(images)
    labels_t = tf.constant(labels.astype(np.float32).reshape(-1, 1))
    ds = tf.data.Dataset.from_tensor_slices(indices.astype(np.int64))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(indices), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(
        lambda idx: (tf.cast(tf.gather(images_t, idx), tf.float32), tf.gather(labels_t, idx)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y))
    return shard_by_data(ds.prefetch(tf.data.AUTOTUNE))


def fit_cached(session: Session, model: keras.Model, data: TrainingData, rng: np.random.Generator) -> None:
    """Fast fine-tuning: run the frozen lower backbone once on `cached_views` augmented views of every training
    image, then train only the layers above `cache_layer` (plus the head) on those cached activations.

    Each epoch draws one view per image (and with mixup a partner to blend it with) from `rng`. The lower layers
    never change, so this equals fine-tuning the top of the network on a fixed pool of augmented images, at a
    fraction of the cost per epoch.
    """
    import tensorflow as tf

    config = session.config
    lower, top, trainable_layers = _split_at(model, config.cache_layer)
    features, val_features = _cache_views(lower, data, config)
    steps = data.steps(config.batch_size)
    make_train = _cached_batches(features, data, config, rng)
    val_ds = tf.data.Dataset.from_tensor_slices(
        (val_features.astype(np.float32), data.y_val.astype(np.float32).reshape(-1, 1))
    ).batch(config.batch_size)
    val_ds = shard_by_data(val_ds)
    fit_phases(session, model, Feed(top, trainable_layers, make_train, val_ds, steps))


def _split_at(model: keras.Model, cache_layer: str) -> tuple[keras.Model, keras.Model, int]:
    """The backbone below cache_layer (images -> activations), the network above it (activations -> p(male), its
    layers shared with `model`), and how many backbone layers lie above it."""
    import keras

    from facegender.training.model import backbone_of

    backbone = backbone_of(model)
    names = [layer.name for layer in backbone.layers]
    if cache_layer not in names:
        raise FaceGenderError(f"cache_layer {cache_layer!r} is not a MobileNetV2 layer")
    cut = backbone.get_layer(cache_layer).output
    lower = keras.Model(backbone.input, cut, name="lower")
    upper = keras.Model(cut, backbone.output, name="upper")
    features_in = keras.Input(shape=cut.shape[1:], name="features")
    x = upper(features_in, training=False)
    for name in ("pool", "head_dense", "head_dropout", "p_male"):
        x = model.get_layer(name)(x)
    top = keras.Model(features_in, x, name="top")
    return lower, top, len(names) - names.index(cache_layer) - 1


def _cache_views(lower: keras.Model, data: TrainingData, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The lower backbone's float16 activations of config.cached_views views of every training image
    (views, images, h, w, c), and of the validation images as they are."""
    from facegender.training.augment import augment_views

    started = time.time()
    # filled in place, view by view: stacking separate views would hold all of them twice at the peak
    features = np.empty((config.cached_views, len(data.x_train), *lower.output.shape[1:]), np.float16)
    with bar(config.cached_views * len(data.x_train), "cache views") as progress:
        for view in range(config.cached_views):
            # view 0: the photo as it is; the others seeded per view, so a rerun or resume caches the same views
            seed = config.seed * 1000 + view
            images = data.x_train if view == 0 else augment_views(data.x_train, config, seed, squares=data.squares)
            _encode(lower, images, out=features[view])
            progress.update(len(data.x_train))
    val_features = _encode(lower, data.x_val)
    log(
        f"cached {features.shape[0]} views x {features.shape[1]} images at {config.cache_layer} "
        f"{tuple(features.shape[2:])} ({features.nbytes / 2**20:.0f} MiB) in {time.time() - started:.0f} s"
    )
    return features, val_features


def _encode(lower: keras.Model, images: np.ndarray, out: np.ndarray | None = None, chunk: int = 1024) -> np.ndarray:
    """The lower backbone's float16 activations of `images`, written into `out` (a new array without one)."""
    # in chunks: a float32 copy of 25,000 photos at 160 px is 7.5 GB, and predict copies its input again
    # (the whole set at once was killed for memory on a 24 GB machine)
    import tensorflow as tf

    if out is None:
        out = np.empty((len(images), *lower.output.shape[1:]), np.float16)
    # one of several workers: each caches every view itself (Keras's predict would split it across the workers)
    encode = _local_encoder(lower) if tf.distribute.has_strategy() else None
    for start in range(0, len(images), chunk):
        scaled = images[start : start + chunk].astype(np.float32) / 127.5 - 1.0
        if encode is None:
            out[start : start + len(scaled)] = lower.predict(scaled, batch_size=64, verbose=0)
        else:
            for i in range(0, len(scaled), 64):
                out[start + i : start + i + 64] = encode(scaled[i : i + 64]).numpy()
    return out


def _local_encoder(lower: keras.Model) -> Callable[[np.ndarray], tf.Tensor]:
    """The lower backbone run on this worker alone, compiled once."""
    import tensorflow as tf

    return tf.function(lambda batch: lower(batch, training=False), reduce_retracing=True)


def _cached_batches(
    features: np.ndarray, data: TrainingData, config: Config, rng: np.random.Generator
) -> Callable[[int], tf.data.Dataset]:
    """epochs -> the training batches of that many epochs: per example a random view of a photo of
    data.indices, with mixup blended with a random partner (activations and labels), all drawn from `rng`."""
    import tensorflow as tf

    labels_t = tf.constant(data.y_train.astype(np.float32).reshape(-1, 1))

    def make_train(epochs: int) -> tf.data.Dataset:
        count = data.steps(config.batch_size) * config.batch_size

        def draw() -> tuple[np.ndarray, np.ndarray]:  # (view, image) of every example of every epoch
            # no epoch left (a resume after the last epoch's checkpoint): an empty draw, and fit only finishes
            epochs_drawn = [np.resize(rng.permutation(data.indices), count) for _ in range(epochs)]
            order = np.concatenate(epochs_drawn) if epochs_drawn else np.zeros(0, np.int64)
            return rng.integers(0, config.cached_views, len(order)), order

        view, index = draw()
        if config.mixup:  # a partner example per example, and the share of the first (NumPy-seeded: reproducible)
            partner_view, partner_index = draw()
            share = rng.beta(config.mixup, config.mixup, len(index))
        else:
            partner_view, partner_index, share = view, index, np.ones(len(index))
        picks = tuple(a.astype(np.int64) for a in (view, index, partner_view, partner_index))
        ds = tf.data.Dataset.from_tensor_slices((*picks, share.astype(np.float32)))
        batches = ds.batch(config.batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE)
        return shard_by_data(batches.prefetch(tf.data.AUTOTUNE))

    def views_of(view: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        # read from the NumPy array itself: a TensorFlow constant of it would be a second copy (7.6 GB for 4 views
        # of 24,605 photos at block_2_add), and making one briefly holds a third
        picked = tf.numpy_function(lambda v, i: features[v, i], [view, index], tf.float16, stateful=False)
        picked.set_shape((None, *features.shape[2:]))
        return tf.cast(picked, tf.float32)

    def gather(
        view: tf.Tensor, index: tf.Tensor, partner_view: tf.Tensor, partner_index: tf.Tensor, share: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        first = views_of(view, index)
        labels = tf.gather(labels_t, index)
        if not config.mixup:
            return first, labels
        second = views_of(partner_view, partner_index)
        weight = tf.reshape(share, (-1, 1, 1, 1))
        mixed = weight * first + (1.0 - weight) * second
        weight = tf.reshape(share, (-1, 1))
        return mixed, weight * labels + (1.0 - weight) * tf.gather(labels_t, partner_index)

    return make_train
