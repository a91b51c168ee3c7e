"""Training-time augmentation, built from Keras preprocessing layers and run inside tf.data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from facegender.conditions import adverse_condition
from facegender.config import Config


def build_augmenter(config: Config, seed: int) -> keras.Sequential | None:
    """Random flip, rotation, zoom, shear and brightness on batches of RGB 0-255 images."""
    layers: list[keras.layers.Layer] = []
    if config.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config.rotation_degrees > 0:
        layers.append(keras.layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode="nearest", seed=seed + 1))
    if config.zoom > 0:
        layers.append(keras.layers.RandomZoom(config.zoom, config.zoom, fill_mode="nearest", seed=seed + 2))
    if config.shear > 0:
        layers.append(keras.layers.RandomShear(x_factor=config.shear, fill_mode="nearest", seed=seed + 3))
    if config.brightness > 0:
        layers.append(keras.layers.RandomBrightness(config.brightness, value_range=(0, 255), seed=seed + 4))
    if not layers:
        return None
    return keras.Sequential(layers, name="augment")


def build_geometry(config: Config) -> list[Any]:
    """Flip and affine (scale, rotation, shear, a little shift), edges reflected."""
    import albumentations as A

    return [
        A.HorizontalFlip(p=0.5 if config.horizontal_flip else 0.0),
        A.Affine(
            scale=(1 - config.zoom, 1 + config.zoom),
            rotate=(-config.rotation_degrees, config.rotation_degrees),
            shear=(-config.shear * 45, config.shear * 45),
            translate_percent=(-0.05, 0.05),
            border_mode=cv2_border_reflect(),
            p=0.9,
        ),
    ]


def build_view_augmenter(config: Config, seed: int) -> Any:
    """Albumentations pipeline for a cached training view at the input size: geometry, flip, one adverse
    condition and brightness/contrast."""
    import albumentations as A

    return A.Compose(
        [
            *build_geometry(config),
            adverse_condition(config.adverse, config.image_size),
            A.RandomBrightnessContrast(brightness_limit=config.brightness, contrast_limit=0.2, p=0.5),
        ],
        seed=seed,
    )


def cv2_border_reflect() -> int:
    import cv2

    return cv2.BORDER_REFLECT_101


def _side_bucket(side: int, size: int) -> int:
    """Squares within 8 px share one adverse pipeline (pixel sizes are rounded anyway)."""
    return int(min(size, max(16, 16 * round(side / 16))))


def augment_views(
    images: np.ndarray,
    config: Config,
    seed: int,
    workers: int = 4,
    chunk: int = 256,
    squares: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """One augmented copy of each uint8 image, reproducible for a seed: each fixed chunk of images has its own
    pipelines seeded from (seed, chunk), so thread scheduling cannot change the result. OpenCV releases the GIL.

    With `squares` (the square each image was resized from, at the photo's resolution up to the input size:
    data.load_images), the adverse condition is applied there, before the resize, as the robustness suite and
    real degraded photos apply it: noise on an 80-px crop is 2-px grain at 160 px, not 1-px. Geometry and
    brightness follow at the input size.
    """
    from concurrent.futures import ThreadPoolExecutor

    import albumentations as A
    from PIL import Image

    if squares is not None and len(squares) != len(images):
        raise ValueError(f"{len(squares)} squares for {len(images)} images")
    size = images.shape[1] if images.ndim == 4 else config.image_size
    out = np.empty_like(images)

    def work(start: int) -> None:
        chunk_seed = seed * 100_003 + start
        if squares is None:
            pipeline = build_view_augmenter(config, chunk_seed)
            for i in range(start, min(start + chunk, len(images))):
                out[i] = pipeline(image=images[i])["image"]
            return
        rest = A.Compose(
            [
                *build_geometry(config),
                A.RandomBrightnessContrast(brightness_limit=config.brightness, contrast_limit=0.2, p=0.5),
            ],
            seed=chunk_seed,
        )
        adverse: dict[int, Any] = {}
        for i in range(start, min(start + chunk, len(images))):
            square = squares[i]
            bucket = _side_bucket(len(square), size)
            if bucket not in adverse:
                adverse[bucket] = A.Compose([adverse_condition(config.adverse, bucket)], seed=chunk_seed * 31 + bucket)
            degraded = adverse[bucket](image=square)["image"]
            if degraded.shape[:2] != (size, size):
                degraded = np.asarray(Image.fromarray(degraded).resize((size, size), Image.Resampling.BILINEAR))
            out[i] = rest(image=degraded)["image"]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(0, len(images), chunk)))
    return out
