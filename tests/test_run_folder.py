"""The run folder's train_args.json as --resume reads it."""

from __future__ import annotations

import json

from facegender.training.run_folder import read_train_args


def test_train_args_without_a_val_key_resume_without_validation_folders(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "train_args.json").write_text(json.dumps({"data": [str(data)], "config": {"preset": "seed"}}))
    args = read_train_args(tmp_path)
    assert args.val is None and args.data == [str(data)] and args.config.preset == "seed"


def test_train_args_with_one_val_folder_as_a_string_read_as_a_list(tmp_path):
    (tmp_path / "train_args.json").write_text(json.dumps({"data": ["d"], "val": "v", "config": {}}))
    assert read_train_args(tmp_path).val == ["v"]
