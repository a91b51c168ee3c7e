"""Bad models, thresholds, output places, datasets and a full disk: one-line errors, nothing half-written."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_clean_error, cli, make_dataset, png_bytes

from facegender import files
from facegender.errors import FaceGenderError

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_truncated_or_garbage_model_files(tmp_path, onnx_model, image):
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(onnx_model.read_bytes()[:5000])
    assert_clean_error(cli("predict", str(image), "--model", str(truncated)), "could not load ONNX model", "cut.onnx")
    garbage = tmp_path / "junk.keras"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    assert_clean_error(cli("predict", str(image), "--model", str(garbage)), "could not load model", "junk.keras")
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    result = cli("predict", str(image), "--model", str(empty))
    assert_clean_error(result, "empty.keras is empty (0 bytes)")
    assert len(result.stderr.strip().splitlines()) == 1  # refused before TensorFlow starts and logs
    wrong = tmp_path / "model.pt"
    wrong.write_bytes(b"x")
    assert_clean_error(cli("predict", str(image), "--model", str(wrong)), "unsupported model file")


def test_model_from_a_newer_version_or_broken_metadata(tmp_path, onnx_model, image):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")  # never reached: the metadata is read and refused first
    model = run / "model.onnx"
    import onnx

    proto = onnx.load(str(onnx_model))
    del proto.metadata_props[:]
    onnx.save(proto, str(model))
    (run / "model.json").write_text(json.dumps({"format_version": 99, "threshold": 0.5}))
    assert_clean_error(cli("predict", str(image), "--model", str(run)), "format_version 99", "Upgrade facegender")
    (run / "model.json").write_text("{not json")
    assert_clean_error(cli("predict", str(image), "--model", str(run)), "not valid JSON")
    (run / "model.json").write_text(json.dumps({"threshold": 7}))
    assert_clean_error(cli("predict", str(image), "--model", str(run)), "out-of-range threshold")


def test_threshold_outside_zero_one(onnx_model, image, tmp_path):
    assert_clean_error(cli("predict", str(image), "--model", str(onnx_model), "--threshold", "1.5"), "between 0 and 1")
    data = make_dataset(tmp_path / "d", 2, 2)
    assert_clean_error(
        cli("evaluate", "--data", str(data), "--model", str(onnx_model), "--threshold", "-0.1"), "between 0 and 1"
    )


def test_output_places_that_cannot_be_written(tmp_path, onnx_model, image):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    data = make_dataset(tmp_path / "d", 2, 2)
    assert_clean_error(
        cli("evaluate", "--data", str(data), "--model", str(onnx_model), "--out", str(blocker / "eval")),
        "cannot write to", "choose another --out",
    )  # fmt: skip
    assert_clean_error(
        cli("predict", str(image), "--model", str(onnx_model), "--output", str(blocker / "out.json")), "cannot write"
    )
    assert blocker.read_text() == "x"


def test_datasets_refused_up_front(tmp_path, onnx_model):
    data = make_dataset(tmp_path / "d", 3, 3)
    for path in (data / "female").iterdir():
        path.unlink()  # an empty class folder
    assert_clean_error(cli("train", "--data", str(data)), "female/ has 0 image(s)")
    one_class = tmp_path / "one"
    (one_class / "male").mkdir(parents=True)
    out = tmp_path / "evaluation"
    assert_clean_error(cli("evaluate", "--data", str(one_class), "--model", str(onnx_model), "--out", str(out)),
                       "no 'female/' folder")  # fmt: skip
    assert not out.exists()  # refused before anything was written
    odd = tmp_path / "odd"
    (odd / "men").mkdir(parents=True)
    (odd / "women").mkdir()
    assert_clean_error(cli("train", "--data", str(odd)), "found: men, women", "male/ and female/")


def test_full_disk_while_writing_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "model.json"
    target.write_text("previous")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write_bytes(target, b"new content")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_full_disk_in_predict_output_is_a_clean_error(tmp_path, onnx_model, image):
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full to simulate a full disk")
    result = subprocess.run(
        [sys.executable, "-m", "facegender", "predict", str(image), "--model", str(onnx_model)],
        stdout=open("/dev/full", "w"), stderr=subprocess.PIPE, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "No space left" in result.stderr


def bound_by_permission_bits() -> list[str]:
    """A command prefix under which file permission bits apply: none for a user; for root (how CI runs), setpriv
    taking the capabilities that let root read and search anything (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) out of
    the command's bounding set, so it runs as root, on root's files, but cannot open a mode-0 file."""
    if os.geteuid() != 0:
        return []
    prefix = [shutil.which("setpriv") or "setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    try:
        works = subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0
    except OSError:
        works = False
    if not works:
        pytest.skip("root reads files whatever their permission bits, and setpriv cannot drop that capability here")
    return prefix


def test_unreadable_file_is_named(tmp_path, onnx_model):
    path = tmp_path / "secret.png"
    path.write_bytes(png_bytes())
    path.chmod(0)
    command = [*bound_by_permission_bits(), sys.executable, "-m", "facegender", "predict", str(path),
               "--model", str(onnx_model)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 1 and "secret.png: permission denied" in result.stderr, result.stderr


def test_facegender_error_is_the_only_exception_type_for_user_errors():
    from facegender.runtime.schema import resolve_model_path

    with pytest.raises(FaceGenderError):
        resolve_model_path("/nonexistent/model.onnx")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_output_through_a_symlink_writes_its_target_and_keeps_modes(tmp_path, onnx_model, image):
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to("real.json")
    result = cli("predict", str(image), "--model", str(onnx_model), "--format", "json", "--output", str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == "real.json"  # the link stays a link
    assert json.loads(target.read_text())[0]["file"] == str(image)
    assert target.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode
    fresh = tmp_path / "new.json"
    assert cli("predict", str(image), "--model", str(onnx_model), "--output", str(fresh)).returncode == 0
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png", "link.json", "new.json", "real.json"]


def test_output_into_a_fifo_writes_into_it_and_leaves_it_a_fifo(tmp_path, onnx_model, image):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader already there: the writer never blocks
    try:
        result = cli("predict", str(image), "--model", str(onnx_model), "--format", "json", "--output", str(fifo))
        assert result.returncode == 0, result.stderr
        received = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert json.loads(received)[0]["file"] == str(image)
    assert fifo.is_fifo()  # not replaced by a plain file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png", "results.fifo"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_output_to_its_own_stdout_goes_down_the_pipe_or_appends_to_the_shells_file(tmp_path, onnx_model, image):
    """--output /dev/stdout (here its /proc spelling, which the test can use without touching /dev)."""
    args = [sys.executable, "-m", "facegender", "predict", str(image), "--model", str(onnx_model), "--format", "json",
            "--output", "/proc/self/fd/1"]  # fmt: skip
    piped = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)[0]["file"] == str(image)
    log = tmp_path / "app.log"
    log.write_text("earlier line\n")
    with log.open("a") as appended:  # as the shell's >> app.log
        result = subprocess.run(args, stdout=appended, stderr=subprocess.PIPE, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert text.startswith("earlier line\n")  # appended, as the shell asked, not replaced
    assert json.loads(text.removeprefix("earlier line\n"))[0]["file"] == str(image)


def test_atomic_write_refuses_a_symlink_loop_and_leaves_it(tmp_path):
    loop = tmp_path / "loop.json"
    loop.symlink_to("loop.json")
    with pytest.raises(OSError, match="symlink loop"):
        files.atomic_write_bytes(loop, b"x")
    assert loop.is_symlink() and [p.name for p in tmp_path.iterdir()] == ["loop.json"]


def test_train_refuses_a_run_folder_inside_a_class_folder(tmp_path):
    data = make_dataset(tmp_path / "d", 3, 3)
    before = sorted(p.name for p in (data / "female").iterdir())
    result = cli("train", "--data", str(data), "--out", str(data / "female" / "run"), "--backbone-weights", "none")
    assert_clean_error(result, "is inside the class folder", "choose a folder outside")
    assert sorted(p.name for p in (data / "female").iterdir()) == before  # no run folder started there
