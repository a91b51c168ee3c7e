"""Training-time augmentation, built from Keras preprocessing layers and run inside tf.data."""

from __future__ import annotations

import keras

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
