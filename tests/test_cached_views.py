"""The cached-views fit's plumbing: activations written in place, and each training batch read back from them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegender.config import resolve
from facegender.training.inputs import TrainingData
from facegender.training.strategies import _cached_batches, _encode

VIEWS, IMAGES, SIDE = 3, 10, 2


def batches(features: np.ndarray, labels: np.ndarray, indices: np.ndarray, mixup: float) -> list[tuple]:
    config = dataclasses.replace(resolve("default"), cached_views=VIEWS, batch_size=4, mixup=mixup)
    data = TrainingData(np.zeros((IMAGES, 1, 1, 3), np.uint8), labels, indices, np.zeros(0), np.zeros(0))
    make_train = _cached_batches(features, data, config, np.random.default_rng(0))
    return [(x.numpy(), y.numpy()) for x, y in make_train(2)]


def test_every_example_is_a_cached_view_of_its_own_photo():
    # each activation map holds one number naming its view and photo: 10 * photo + view
    codes = 10 * np.arange(IMAGES)[None, :] + np.arange(VIEWS)[:, None]
    features = np.broadcast_to(codes[..., None, None, None], (VIEWS, IMAGES, SIDE, SIDE, 1)).astype(np.float16)
    labels = np.array([0, 1] * (IMAGES // 2))
    indices = np.array([1, 2, 3, 5, 8])  # an epoch draws these photos only
    seen, views = [], set()
    for x, y in batches(features, labels, indices, mixup=0.0):
        assert x.dtype == np.float32 and x.shape[1:] == (SIDE, SIDE, 1)
        for example, label in zip(x, y, strict=True):
            assert np.all(example == example.flat[0])  # one cached map, not a mix of several
            photo, view = divmod(int(example.flat[0]), 10)
            assert view < VIEWS and label[0] == labels[photo]
            seen.append(photo)
            views.add(view)
    assert len(views) > 1  # views drawn at random, not always the same one
    # an epoch fills whole batches: 2 of 4, so every drawn photo once, then 3 of them again
    assert len(seen) == 2 * 8
    for epoch in (seen[:8], seen[8:]):
        assert sorted(epoch[:5]) == indices.tolist() and set(epoch[5:]) <= set(indices)


def test_mixup_blends_activations_and_labels_of_the_same_two_photos():
    labels = np.array([0, 1] * (IMAGES // 2))
    # every view of a photo holds its label: a blended example must then equal its blended label
    features = np.broadcast_to(labels[None, :, None, None, None], (VIEWS, IMAGES, SIDE, SIDE, 1)).astype(np.float16)
    mixed = 0
    for x, y in batches(features, labels, np.arange(IMAGES), mixup=0.4):
        for example, label in zip(x, y, strict=True):
            assert example == pytest.approx(np.full_like(example, label[0]), abs=1e-6)
            mixed += 0.0 < label[0] < 1.0
    assert mixed > 0  # some examples were blended across the classes


def test_activations_are_written_in_place_chunk_by_chunk():
    import keras

    images_in = keras.Input((4, 4, 3))
    lower = keras.Model(images_in, keras.layers.Conv2D(2, 1)(images_in))
    images = np.random.default_rng(1).integers(0, 256, (7, 4, 4, 3), dtype=np.uint8)
    expected = lower.predict(images.astype(np.float32) / 127.5 - 1.0, verbose=0)
    store = np.zeros((2, 7, 4, 4, 2), np.float16)
    returned = _encode(lower, images, out=store[1], chunk=3)  # chunks of 3, 3 and 1 photos
    assert np.shares_memory(returned, store)
    np.testing.assert_allclose(store[1], expected, rtol=1e-2, atol=1e-2)
    assert not store[0].any()  # the other view's slot untouched
    np.testing.assert_allclose(_encode(lower, images), expected, rtol=1e-2, atol=1e-2)  # a new array without one
