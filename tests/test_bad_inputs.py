"""Every kind of bad input through the real CLI: a clear message naming the file, no traceback, the rest carries on.

The corpus is generated here (no committed binaries). Also property-based tests of the image loading entry point.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facegender.errors import ImageError
from facegender.faces.images import decode_image, load_prepared

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb: tiny file, huge image)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    )


def jpeg_bytes(image: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **kw)
    return buffer.getvalue()


def make_corpus(root: Path) -> tuple[dict[str, str], list[str]]:
    """Files that must be predicted (name -> expected) and files that must be reported as errors."""
    root.mkdir(parents=True)
    face = Image.new("RGB", (80, 60), (200, 150, 120))
    good, bad = {}, []

    def add_good(name: str, data: bytes) -> None:
        (root / name).write_bytes(data)
        good[name] = "ok"

    def add_bad(name: str, data: bytes) -> None:
        (root / name).write_bytes(data)
        bad.append(name)

    add_bad("zero.jpg", b"")
    add_bad("truncated.jpg", jpeg_bytes(face)[:300])
    add_bad("page.jpg", b"<!doctype html><html><body>not an image</body></html>")
    add_bad("bomb.png", png_with_size(30000, 30000))
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 40), (255, 0, 0, 0)).save(buffer, "PNG")
    add_good("alpha.png", buffer.getvalue())
    buffer = io.BytesIO()
    Image.new("I;16", (40, 40), 40000).save(buffer, "PNG")
    add_good("sixteen.png", buffer.getvalue())
    buffer = io.BytesIO()
    Image.new("P", (40, 40), 7).save(buffer, "PNG")
    add_good("palette.png", buffer.getvalue())
    add_good("gray.jpg", jpeg_bytes(Image.new("L", (40, 40), 99)))
    add_good("cmyk.jpg", jpeg_bytes(Image.new("CMYK", (40, 40), (10, 20, 30, 0))))
    exif = Image.Exif()
    exif[0x0112] = 8
    add_good("rotated.jpg", jpeg_bytes(face, exif=exif.tobytes()))
    add_good("one_pixel.png", _png(Image.new("RGB", (1, 1), (5, 5, 5))))
    frames = [Image.new("P", (30, 30), i) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    (root / "animated.gif").write_bytes(buffer.getvalue())  # not an accepted extension inside folders
    add_good("with spaces.png", _png(face))
    add_good("ünïcødé.png", _png(face))
    undecodable = os.fsdecode(b"bytes_\xff.png")
    (root / undecodable).write_bytes(_png(face))
    good[undecodable] = "ok"
    (root / "folder.jpg").mkdir()  # a folder named like an image: searched, not read as a file
    (root / "folder.jpg" / "inside.png").write_bytes(_png(face))
    good["folder.jpg/inside.png"] = "ok"
    (root / "loop").symlink_to(root, target_is_directory=True)  # a symlink loop: not followed
    return good, bad


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("command", ["predict", "predict-detect", "evaluate"])
def test_bad_input_corpus_through_the_cli(tmp_path, onnx_model, command):
    if command.startswith("predict"):
        good, bad = make_corpus(tmp_path / "corpus")
        args = ["predict", str(tmp_path / "corpus"), "--model", str(onnx_model), "--format", "json"]
        # the corpus's synthetic faces are no faces to a detector: with it, readable files give 'no_face'
        args += [] if command == "predict-detect" else ["--no-detect"]
    else:
        good, bad = make_corpus(tmp_path / "data" / "male")
        (tmp_path / "data" / "female").mkdir()
        (tmp_path / "data" / "female" / "f.png").write_bytes(_png(Image.new("RGB", (30, 30))))
        args = ["evaluate", "--data", str(tmp_path / "data"), "--model", str(onnx_model), "--out", str(tmp_path / "e")]
    result = subprocess.run([sys.executable, "-m", "facegender", *args], capture_output=True, env=ENV, timeout=300)
    stderr = result.stderr.decode("utf-8")  # valid UTF-8 even with an undecodable file name
    assert result.returncode == 1, stderr  # some inputs unreadable, the rest processed
    assert "Traceback" not in stderr
    for name in bad:
        assert name in stderr, f"{name} not named in: {stderr}"
    if command.startswith("predict"):
        rows = json.loads(result.stdout.decode("utf-8"))
        by_name = {Path(r["file"]).relative_to(tmp_path / "corpus").as_posix(): r for r in rows}
        assert len(by_name) == len(rows)  # one row per file: no face found twice in these
        assert {n for n, r in by_name.items() if r["label"] == "error"} == set(bad)
        expected = ("no_face",) if command == "predict-detect" else ("female", "male")
        for name in good:
            key = os.fsencode(name).decode("utf-8", "backslashreplace")  # how undecodable bytes are shown
            assert by_name[key]["label"] in expected, name
        assert "animated.gif" not in by_name and not any(n.startswith("loop/") for n in by_name)
    else:
        metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
        assert sorted(Path(s["file"]).name for s in metrics["skipped"]) == sorted(bad)
        assert metrics["n"] == len(good) + 1


def test_exif_rotation_is_honoured_in_the_model_input(tmp_path):
    image = Image.new("RGB", (80, 40), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 40, 40))  # white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: white goes to the top
    path = tmp_path / "r.jpg"
    path.write_bytes(jpeg_bytes(image, exif=exif.tobytes(), quality=95))
    prepared = load_prepared(path, 40, 1.0)
    assert prepared[:10].mean() > 200 and prepared[-10:].mean() < 50


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageError, match=r"too large \(Image size \(900000000 pixels\)"):
        decode_image(png_with_size(30000, 30000), "bomb.png")


@given(st.binary(max_size=2048))
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)
def test_random_bytes_never_escape_as_anything_but_image_error(data):
    try:
        image = decode_image(data, "random.bin")
    except ImageError as exc:
        assert exc.path == "random.bin" and exc.reason
    else:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    fmt_mode=st.sampled_from(
        [("PNG", m) for m in ("RGB", "L", "RGBA", "P", "I;16", "1")]
        + [("JPEG", m) for m in ("RGB", "L", "CMYK")]
        + [("BMP", m) for m in ("RGB", "L", "P", "1")]
        + [("WEBP", m) for m in ("RGB", "RGBA")]
    ),
    crop=st.floats(0.1, 1.0),
)
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
def test_random_valid_images_always_prepare(width, height, fmt_mode, crop):
    fmt, mode = fmt_mode
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, fmt)
    out = decode_image(buffer.getvalue(), "x")
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    from facegender.faces.images import prepare

    assert prepare(out, 32, crop).shape == (32, 32, 3)


def predict_cli(
    onnx_model: Path, *args: str, cwd: Path | None = None, fmt: str = "json"
) -> subprocess.CompletedProcess:
    """`facegender predict ARGS --no-detect --format FMT` with a short timeout: a hang fails, not stalls."""
    command = [sys.executable, "-m", "facegender", "predict", *args, "--model", str(onnx_model), "--no-detect"]
    return subprocess.run([*command, "--format", fmt], capture_output=True, text=True, env=ENV, timeout=60, cwd=cwd)


def test_a_fifo_is_skipped_in_folders_and_refused_by_name_never_opened(tmp_path, onnx_model):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "face.png").write_bytes(_png(Image.new("RGB", (30, 30), (200, 150, 120))))
    os.mkfifo(folder / "fifo.jpg")  # opening it for reading would wait for a writer forever
    result = predict_cli(onnx_model, str(folder), str(folder / "fifo.jpg"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    rows = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert sorted(rows) == ["face.png", "fifo.jpg"]  # the folder's FIFO skipped, the named one reported once
    assert rows["face.png"]["label"] in ("female", "male")
    assert rows["fifo.jpg"]["label"] == "error" and "not a regular file" in rows["fifo.jpg"]["error"]
    assert f"could not read {folder / 'fifo.jpg'}: not a regular file" in result.stderr
    assert (folder / "fifo.jpg").is_fifo()


def test_load_image_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    import threading

    fifo = tmp_path / "swapped.jpg"
    os.mkfifo(fifo)  # e.g. swapped in after a folder scan
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_prepared(fifo, 32)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # stuck opening the FIFO: become its writer so that the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail("load_image waited on a FIFO")
    assert isinstance(outcome[0], ImageError) and "not a regular file" in outcome[0].reason


@pytest.mark.parametrize("annotate", [False, True])
def test_a_symlink_loop_is_named_as_such_with_or_without_annotate(tmp_path, onnx_model, annotate):
    folder = tmp_path / "img"
    folder.mkdir()
    (folder / "face.png").write_bytes(_png(Image.new("RGB", (30, 30), (200, 150, 120))))
    (folder / "loop1.jpg").symlink_to("loop1.jpg")
    extra = ["--annotate", str(tmp_path / "ann")] if annotate else []
    result = predict_cli(onnx_model, str(folder), *extra)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    rows = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert rows["face.png"]["label"] in ("female", "male")
    assert rows["loop1.jpg"]["label"] == "error"
    assert "symlink loop" in rows["loop1.jpg"]["error"] and "truncated" not in rows["loop1.jpg"]["error"]
    assert f"could not read {folder / 'loop1.jpg'}: is a symlink loop" in result.stderr
    if annotate:
        assert [p.name for p in (tmp_path / "ann").iterdir()] == ["face.png"]


def test_an_empty_input_or_annotate_name_is_refused_not_taken_as_the_current_folder(tmp_path, onnx_model):
    (tmp_path / "face.png").write_bytes(_png(Image.new("RGB", (30, 30), (200, 150, 120))))
    face = str(tmp_path / "face.png")
    for args, fragment in ((["", face], "an input is an empty name"),
                           ([face, "--annotate", ""], "--annotate is an empty name")):  # fmt: skip
        result = predict_cli(onnx_model, *args, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert fragment in result.stderr and result.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == ["face.png"]


def test_a_newline_in_a_file_name_is_shown_escaped_on_one_line(tmp_path, onnx_model):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "new\nline.png").write_bytes(_png(Image.new("RGB", (30, 30), (200, 150, 120))))
    (folder / "bad\tname\r.jpg").write_bytes(b"not an image")
    result = predict_cli(onnx_model, str(folder), fmt="table")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    table = result.stdout.splitlines()
    assert len(table) == 3, result.stdout  # the header and one row per file
    assert table[1].startswith(f"{folder}/bad\\tname\\r.jpg ") and "error" in table[1]
    assert table[2].startswith(f"{folder}/new\\nline.png ") and table[2].split()[2] in ("female", "male")
    assert f"could not read {folder}/bad\\tname\\r.jpg: not an image" in result.stderr.splitlines()[0]
    assert len(result.stderr.splitlines()) == 2  # that line and the count
