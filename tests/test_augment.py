"""Training-time augmentation: cached views, and adverse conditions applied at the photo's own resolution."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegender.conditions import MIN_DEGRADED_SIDE, adverse_condition
from facegender.config import DEFAULT
from facegender.training.augment import augment_views

pytest.importorskip("albumentations")

STILL = dataclasses.replace(DEFAULT, zoom=0.0, rotation_degrees=0.0, shear=0.0, brightness=0.0, horizontal_flip=False)


def test_views_are_reproducible_for_a_seed_and_differ_between_seeds():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    squares = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for side in (20, 40, 64, 33, 50, 64)]
    config = dataclasses.replace(DEFAULT, image_size=64, adverse=1.0)
    first = augment_views(images, config, seed=3, chunk=2, squares=squares)
    assert first.shape == images.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, augment_views(images, config, seed=3, chunk=2, squares=squares))
    assert not np.array_equal(first, augment_views(images, config, seed=4, chunk=2, squares=squares))


def test_views_are_made_from_the_square_at_the_photos_resolution():
    images = np.zeros((2, 64, 64, 3), np.uint8)  # the resized input: black
    squares = [np.full((32, 32, 3), 200, np.uint8), np.full((64, 64, 3), 90, np.uint8)]
    config = dataclasses.replace(STILL, image_size=64, adverse=0.0)
    views = augment_views(images, config, seed=1, squares=squares)
    # shifted by at most 5 %, edges reflected, contrast within 20 %: the square, resized, not the black input
    assert 160 <= views[0].mean() <= 240 and 72 <= views[1].mean() <= 108
    without = augment_views(images, config, seed=1)
    assert without.max() == 0


def test_a_square_of_another_count_is_refused():
    with pytest.raises(ValueError, match="1 squares for 2 images"):
        augment_views(np.zeros((2, 16, 16, 3), np.uint8), DEFAULT, seed=0, squares=[np.zeros((8, 8, 3), np.uint8)])


@pytest.mark.parametrize("side", [24, 40, 80, 120, 160])
def test_down_scaling_leaves_a_face_at_every_resolution(side):
    import albumentations as A

    downscale = next(t for t in adverse_condition(DEFAULT.adverse, side).transforms if isinstance(t, A.Downscale))
    low, high = downscale.scale_range
    assert round(low * side) >= MIN_DEGRADED_SIDE or low == 1.0
    assert low <= high <= 1.0


@pytest.mark.parametrize("side", [40, 160])
def test_blur_scales_with_the_resolution(side):
    import albumentations as A

    blur = next(t for t in adverse_condition(DEFAULT.adverse, side).transforms if isinstance(t, A.GaussianBlur))
    assert blur.sigma_limit[1] == pytest.approx(max(0.5, 3.0 * side / 160))


def test_noise_and_rain_are_drawn_twice_as_often_as_each_other_condition():
    """Version 3 collapsed under the robustness suite's noise and rain: a degraded view gets each of them with twice
    the chance of any other condition, and rain comes in heavy and torrential kinds too."""
    pipeline = adverse_condition(1.0, 160)
    share = {type(t).__name__: p for t, p in zip(pipeline.transforms, pipeline.transforms_ps, strict=True)}
    assert len(share) == 10 and sum(share.values()) == pytest.approx(1.0)
    others = [p for name, p in share.items() if name not in ("GaussNoise", "OneOf")]
    assert share["GaussNoise"] == share["OneOf"] == pytest.approx(2 * others[0])
    assert max(others) == pytest.approx(min(others))
    rain = next(t for t in pipeline.transforms if type(t).__name__ == "OneOf")
    assert {type(t).__name__ for t in rain.transforms} == {"RandomRain"}
    assert {getattr(t, "rain_type", None) for t in rain.transforms} >= {"heavy", "torrential"}
