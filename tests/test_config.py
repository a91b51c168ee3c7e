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


# Every check of Config.validate at the edges of its range: (overrides on the seed preset, the one problem it has or
# None). The seed preset caches nothing, so mixup is checked against cached_views where the case says so.
NO_WEIGHTS = "backbone_weights must be imagenet, face, none or an existing weights file, got '/w.h5'"
EDGES = [
    ({"image_size": 32}, None),
    ({"image_size": 512}, None),
    ({"image_size": 31}, "image_size must be in [32, 512]"),
    ({"image_size": 513}, "image_size must be in [32, 512]"),
    ({"crop": 0.1}, None),
    ({"crop": 0.09}, "crop must be in [0.1, 1]"),
    ({"face_scale": 1.0}, None),
    ({"face_scale": 4.0}, None),
    ({"face_scale": 0.99}, "face_scale must be in [1, 4]"),
    ({"face_scale": 4.01}, "face_scale must be in [1, 4]"),
    ({"trainable_layers": -1}, None),
    ({"trainable_layers": 0}, None),
    ({"trainable_layers": -2}, "trainable_layers must be -1 (all) or >= 0"),
    ({"head_units": 1}, None),
    ({"head_units": 0}, "head_units must be >= 1"),
    ({"dropout": 0.0}, None),
    ({"dropout": 0.99}, None),
    ({"dropout": 1.0}, "dropout must be in [0, 1)"),
    ({"dropout": -0.01}, "dropout must be in [0, 1)"),
    ({"loss": "bce"}, None),
    ({"loss": "mse"}, "loss must be 'focal' or 'bce'"),
    ({"focal_alpha": 0.0}, None),
    ({"focal_alpha": 1.0}, None),
    ({"focal_alpha": 1.01}, "focal_alpha must be in [0, 1]"),
    ({"focal_alpha": -0.01}, "focal_alpha must be in [0, 1]"),
    ({"focal_gamma": 0.0}, None),
    ({"focal_gamma": -0.01}, "focal_gamma must be >= 0"),
    ({"label_smoothing": 0.0}, None),
    ({"label_smoothing": 0.49}, None),
    ({"label_smoothing": 0.5}, "label_smoothing must be in [0, 0.5)"),
    ({"label_smoothing": -0.01}, "label_smoothing must be in [0, 0.5)"),
    ({"learning_rate": 1e-9, "head_learning_rate": 1e-9}, None),
    ({"learning_rate": 0.0}, "learning rates must be > 0"),
    ({"head_learning_rate": 0.0}, "learning rates must be > 0"),
    ({"epochs": 0, "head_epochs": 1}, None),
    ({"epochs": 1, "head_epochs": 0}, None),
    ({"epochs": 1, "head_epochs": 1}, None),
    ({"epochs": 0, "head_epochs": 0}, "train at least one epoch"),
    ({"epochs": -1, "head_epochs": 5}, "epochs must be >= 0"),
    ({"epochs": 5, "head_epochs": -1}, "epochs must be >= 0"),
    ({"epochs": 10_000, "head_epochs": 10_000}, None),
    ({"epochs": 10_001}, "epochs must be at most 10000"),
    ({"head_epochs": 10_001}, "epochs must be at most 10000"),
    ({"seed": 0}, None),
    ({"seed": 2**32 - 1}, None),
    ({"seed": 2**32}, "seed must be a whole number in [0, 2**32)"),
    ({"seed": -1}, "seed must be a whole number in [0, 2**32)"),
    ({"reduce_lr_factor": 0.99}, None),
    ({"reduce_lr_factor": 0.0}, "reduce_lr_factor must be in (0, 1)"),
    ({"reduce_lr_factor": 1.0}, "reduce_lr_factor must be in (0, 1)"),
    ({"min_learning_rate": 0.0}, None),
    ({"min_learning_rate": -1e-9}, "min_learning_rate must be >= 0"),
    ({"early_stopping_patience": 0, "reduce_lr_patience": 0}, None),
    ({"early_stopping_patience": -1}, "patiences must be >= 0"),
    ({"reduce_lr_patience": -1}, "patiences must be >= 0"),
    ({"rotation_degrees": 0.0}, None),
    ({"rotation_degrees": 180.0}, None),
    ({"rotation_degrees": 180.5}, "rotation_degrees must be in [0, 180]"),
    ({"rotation_degrees": -0.5}, "rotation_degrees must be in [0, 180]"),
    ({"shear": 0.0}, None),
    ({"shear": 1.0}, "shear must be in [0, 1)"),
    ({"shear": -0.01}, "shear must be in [0, 1)"),
    ({"batch_size": 1}, None),
    ({"batch_size": 4096}, None),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"batch_size": 4097}, "batch_size must be at most 4096"),
    ({"backbone_weights": "face"}, None),
    ({"backbone_weights": "none"}, None),
    ({"backbone_weights": "imagenet"}, None),
    ({"backbone_weights": "/w.h5"}, NO_WEIGHTS),
    ({"val_fraction": 0.01}, None),
    ({"val_fraction": 0.89}, None),
    ({"val_fraction": 0.0}, "val_fraction must be in (0, 0.9)"),
    ({"val_fraction": 0.9}, "val_fraction must be in (0, 0.9)"),
    ({"zoom": 0.0, "brightness": 0.0}, None),
    ({"zoom": 1.0}, "zoom and brightness must be in [0, 1)"),
    ({"brightness": 1.0}, "zoom and brightness must be in [0, 1)"),
    ({"zoom": -0.01}, "zoom and brightness must be in [0, 1)"),
    ({"brightness": -0.01}, "zoom and brightness must be in [0, 1)"),
    ({"adverse": 0.0}, None),
    ({"adverse": 1.0}, None),
    ({"adverse": 1.01}, "adverse must be a probability in [0, 1]"),
    ({"adverse": -0.01}, "adverse must be a probability in [0, 1]"),
    ({"cached_views": 0}, None),
    ({"cached_views": 64}, None),
    ({"cached_views": 65}, "cached_views must be in [0, 64]"),
    ({"cached_views": -1}, "cached_views must be in [0, 64]"),
    ({"mixup": 100.0, "cached_views": 1}, None),
    ({"mixup": 100.5, "cached_views": 1}, "mixup must be in [0, 100] (0: off)"),
    ({"mixup": 0.1, "cached_views": 0}, "mixup needs cached_views > 0"),
    ({"schedule": "cosine"}, None),
    ({"schedule": "step"}, "schedule must be 'plateau' or 'cosine'"),
    ({"monitor": "val_auc"}, None),
    ({"monitor": "val_acc"}, "monitor must be 'val_loss' or 'val_auc'"),
    ({"source_weights": (0.5, 100.0)}, None),
    ({"source_weights": (0.0,)}, "source_weights must be numbers in (0, 100], one per training data folder"),
    ({"source_weights": (100.5,)}, "source_weights must be numbers in (0, 100], one per training data folder"),
]


@pytest.mark.parametrize(("overrides", "problem"), EDGES)
def test_every_check_at_the_edges_of_its_range(overrides, problem):
    if problem is None:
        config = cfg.resolve("seed", overrides)
        assert {name: getattr(config, name) for name in overrides} == overrides
    else:
        with pytest.raises(FaceGenderError) as info:
            cfg.resolve("seed", overrides)
        assert str(info.value) == f"invalid configuration: {problem}"


def test_every_problem_is_named_in_one_message(tmp_path):
    weights = tmp_path / "backbone.weights.h5"
    weights.write_bytes(b"weights")
    assert cfg.resolve("seed", {"backbone_weights": str(weights)}).backbone_weights == str(weights)
    with pytest.raises(FaceGenderError) as info:
        cfg.resolve("seed", {"dropout": 1.0, "shear": 1.0})
    assert str(info.value) == "invalid configuration: dropout must be in [0, 1); shear must be in [0, 1)"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("oversample", True, True),
        ("oversample", False, False),
        *(("oversample", text, True) for text in ("1", "true", "YES", "On")),
        *(("oversample", text, False) for text in ("0", "False", "no", "OFF")),
        ("epochs", "3", 3),
        ("epochs", "3.0", 3),
        ("epochs", 4.0, 4),
        ("trainable_layers", 2**53 + 1, 2**53 + 1),  # kept exactly, not rounded through a float
        ("dropout", "0.25", 0.25),
        ("dropout", 0, 0.0),
        ("cache_layer", "block_5_add", "block_5_add"),
        ("cache_layer", 12, "12"),
        ("source_weights", "2,1, 0.5", (2.0, 1.0, 0.5)),
        ("source_weights", "2,,1", (2.0, 1.0)),
        ("source_weights", [2, "1.5"], (2.0, 1.5)),
        ("source_weights", (), ()),
    ],
)
def test_values_are_converted_to_the_fields_type(field, value, expected):
    converted = getattr(cfg.resolve("seed", {field: value}), field)
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("oversample", "maybe", "true or false"),
        ("oversample", 2, "true or false"),
        ("epochs", 1.9, "a whole number"),
        ("epochs", "2.5", "a whole number"),
        ("epochs", True, "a whole number"),
        ("epochs", float("inf"), "a whole number"),
        ("epochs", [3], "a whole number"),
        ("dropout", "nan", "a finite number"),
        ("dropout", True, "a finite number"),
        ("dropout", None, "a finite number"),
        ("cache_layer", None, "text"),
        ("cache_layer", True, "text"),
        ("cache_layer", ["a"], "text"),
        ("source_weights", 3, "a list of numbers (or text such as '2,1,1')"),
        ("source_weights", "2,x", "a list of numbers (or text such as '2,1,1')"),
    ],
)
def test_values_that_would_change_meaning_are_refused(field, value, kind):
    with pytest.raises(FaceGenderError) as info:
        cfg.resolve("seed", {field: value})
    assert str(info.value) == f"config field {field!r} must be {kind}, got {value!r}"


def test_resolve_takes_the_preset_named_in_the_overrides_and_every_other_key():
    assert cfg.resolve().preset == "default" and cfg.resolve("seed").preset == "seed"
    config = cfg.resolve("seed", {"preset": "default", "epochs": 3})
    assert (config.preset, config.image_size, config.epochs) == ("default", 160, 3)
    assert cfg.resolve("default", {"preset": "seed", "epochs": 3}).image_size == 224
    with pytest.raises(FaceGenderError) as info:
        cfg.resolve("seed", {"epochz": 3})
    assert str(info.value).startswith("unknown config field 'epochz'; known fields: adverse, backbone_weights, ")
    assert cfg.from_preset("seed").to_dict()["epochs"] == 25
    assert cfg.from_preset("default").to_dict()["preset"] == "default"


def test_from_sources_a_flag_beats_the_file_and_a_preset_beats_the_files(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: seed\nepochs: 3\nbatch_size: 8\n")
    assert cfg.from_sources(None, None, {}) == cfg.resolve("default")
    config = cfg.from_sources(None, path, {"epochs": 5, "batch_size": None})
    assert (config.preset, config.image_size, config.epochs, config.batch_size) == ("seed", 224, 5, 8)
    config = cfg.from_sources("default", path, {"epochs": None})
    assert (config.preset, config.image_size, config.epochs, config.batch_size) == ("default", 160, 3, 8)


def test_config_files_are_read_by_their_suffix_with_clear_errors(tmp_path):
    import yaml

    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"epochs": 3}).encode())  # a Windows editor's byte-order mark
    assert cfg.load_overrides(bom) == {"epochs": 3}
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set\n")
    assert cfg.load_overrides(empty) == {}
    cases = {
        "latin1.yaml": (b"name: caf\xe9\n", "config file {} is not UTF-8 text ("),
        "list.yaml": (b"- 1\n- 2\n", "config file {} must hold a mapping of field: value"),
        "yaml.JSON": (b"epochs: 3\n", "could not parse config file {}: "),  # .json (any case) is read as JSON
        "preset.yaml": (b"preset: 5\n", "config file {}: preset must be one of seed, default, got 5"),
    }
    for name, (content, start) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(FaceGenderError) as info:
            cfg.load_overrides(tmp_path / name)
        assert str(info.value).startswith(start.format(tmp_path / name)), name
    assert str(info.value) == f"config file {tmp_path / 'preset.yaml'}: preset must be one of seed, default, got 5"
    with pytest.raises(FaceGenderError) as info:
        cfg.load_overrides(tmp_path / "list.yaml")
    assert str(info.value) == f"config file {tmp_path / 'list.yaml'} must hold a mapping of field: value"
    with pytest.raises(FaceGenderError) as info:
        cfg.load_overrides(tmp_path / "latin1.yaml")
    assert str(info.value).endswith("); save it as UTF-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(yaml.YAMLError) as parsed:
        yaml.safe_load(bad.read_text())
    with pytest.raises(FaceGenderError) as info:
        cfg.load_overrides(bad)
    assert str(info.value) == f"could not parse config file {bad}: {' '.join(str(parsed.value).split())}"
