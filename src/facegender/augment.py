"""Training-time augmentation, built from Keras preprocessing layers and run inside tf.data."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

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


def build_view_augmenter(config: Config, seed: int) -> Any:
    """Albumentations pipeline for cached training views: geometry, flip, and the adverse conditions
    the model must survive (blur, motion blur, fog, rain, low light, noise, JPEG, down-scaling, glare)."""
    import albumentations as A

    size = config.image_size
    adverse = A.OneOf(
        [
            A.GaussianBlur(blur_limit=(3, 9), sigma_limit=(0.8, 3.0)),
            A.MotionBlur(blur_limit=(5, 13)),
            A.RandomFog(fog_coef_range=(0.3, 0.8), alpha_coef=0.1),
            A.RandomRain(
                slant_range=(-15, 15), drop_length=max(4, size // 12), blur_value=3, brightness_coefficient=0.8
            ),
            A.RandomGamma(gamma_limit=(180, 350)),  # low light: gamma > 1 darkens
            A.GaussNoise(std_range=(0.05, 0.25)),
            A.ImageCompression(quality_range=(8, 40)),
            A.Downscale(scale_range=(0.12, 0.4)),
            A.RandomSunFlare(flare_roi=(0, 0, 1, 0.6), src_radius=max(20, size // 3)),
            A.RandomBrightnessContrast(brightness_limit=(0.25, 0.5), contrast_limit=(-0.4, -0.1)),  # overexposure
        ],
        p=config.adverse,
    )
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5 if config.horizontal_flip else 0.0),
            A.Affine(
                scale=(1 - config.zoom, 1 + config.zoom),
                rotate=(-config.rotation_degrees, config.rotation_degrees),
                shear=(-config.shear * 45, config.shear * 45),
                translate_percent=(-0.05, 0.05),
                border_mode=cv2_border_reflect(),
                p=0.9,
            ),
            adverse,
            A.RandomBrightnessContrast(brightness_limit=config.brightness, contrast_limit=0.2, p=0.5),
        ],
        seed=seed,
    )


def cv2_border_reflect() -> int:
    import cv2

    return cv2.BORDER_REFLECT_101


def augment_views(images: np.ndarray, config: Config, seed: int, workers: int = 4, chunk: int = 256) -> np.ndarray:
    """One augmented copy of each uint8 image, reproducible for a seed: each fixed chunk of images has its own
    pipeline seeded from (seed, chunk), so thread scheduling cannot change the result. OpenCV releases the GIL."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.empty_like(images)

    def work(start: int) -> None:
        pipeline = build_view_augmenter(config, seed * 100_003 + start)
        for i in range(start, min(start + chunk, len(images))):
            out[i] = pipeline(image=images[i])["image"]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(0, len(images), chunk)))
    return out
