import json

import pytest

from facegender import config as cfg
from facegender.errors import FaceGenderError


def test_seed_preset_is_the_original_recipe():
    seed = cfg.from_preset("seed")
    assert (seed.image_size, seed.trainable_layers, seed.head_units, seed.dropout) == (224, 30, 128, 0.3)
    assert (seed.loss, seed.focal_alpha, seed.focal_gamma) == ("focal", 0.5, 1.5)
    assert (seed.learning_rate, seed.batch_size, seed.epochs, seed.early_stopping_patience) == (1e-5, 32, 25, 5)
    assert seed.oversample and seed.class_weights and seed.crop == 1.0 and seed.head_epochs == 0


def test_presets_are_independent_copies():
    a = cfg.from_preset("seed")
    a.epochs = 1
    assert cfg.from_preset("seed").epochs == 25


def test_file_then_flags_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nbatch_size: 8\noversample: false\n")
    config = cfg.resolve("seed", {**cfg.load_overrides(path), "epochs": 5})
    assert (config.epochs, config.batch_size, config.oversample, config.preset) == (5, 8, False, "seed")


def test_json_config_and_run_model_json(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"threshold": 0.4, "config": {"image_size": 96, "preset": "seed"}}))
    assert cfg.resolve("default", cfg.load_overrides(path)).image_size == 96


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochz": 3}, "unknown config field 'epochz'"),
        ({"crop": 2.0}, "crop must be"),
        ({"epochs": "x"}, "must be a whole number"),
        ({"mixup": -0.1}, r"mixup must be in \[0, 100\]"),
        ({"mixup": 0.4}, "mixup needs cached_views > 0"),  # the seed preset streams: nothing cached to mix
    ],
)
def test_bad_values_are_refused_with_the_field_named(overrides, message):
    with pytest.raises(FaceGenderError, match=message):
        cfg.resolve("seed", overrides)


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(FaceGenderError, match="choose one of: seed, default"):
        cfg.from_preset("best")
    with pytest.raises(FaceGenderError, match="config file not found"):
        cfg.load_overrides(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(FaceGenderError, match="could not parse"):
        cfg.load_overrides(bad)
