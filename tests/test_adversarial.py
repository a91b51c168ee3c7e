"""Issue 16: bad inputs found by an adversarial pass over predict, evaluate and serve; each one pinned here."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLI_ENV, assert_clean_error, cli, grey_photo
from test_bad_models_and_outputs import bound_by_permission_bits


def predict_cli(model: Path, *args: str) -> subprocess.CompletedProcess:
    return cli("predict", *args, "--model", str(model), "--no-detect", "--format", "json")


def test_output_naming_an_input_photo_is_refused_before_any_work(tmp_path, brightness_model):
    model = brightness_model()
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = [grey_photo(folder / name, 128) for name in ("a.png", "b.png")]
    before = photos[0].read_bytes()
    (folder / "link.json").symlink_to("a.png")
    for output in (photos[0], folder / "link.json"):  # a glob's own file, and a link to it
        result = predict_cli(model, *map(str, photos), "--output", str(output))
        assert_clean_error(result, "is one of the photos being predicted", "name a new file")
        assert photos[0].read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png", "link.json"]


def test_output_into_a_read_only_folder_is_refused_before_any_work(tmp_path, brightness_model):
    model = brightness_model()
    photo = grey_photo(tmp_path / "a.png", 128)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    prefix = bound_by_permission_bits()
    result = subprocess.run([*prefix, sys.executable, "-m", "facegender", "predict", str(photo), "--model", str(model),
                             "--no-detect", "--output", str(locked / "out.json")],
                            capture_output=True, text=True, env=CLI_ENV, timeout=120)  # fmt: skip
    assert_clean_error(result, "cannot write to", "choose another --output")
    assert "could not read" not in result.stderr
    assert list(locked.iterdir()) == []


def test_output_check_comes_before_reading_any_photo(tmp_path, brightness_model, monkeypatch):
    from facegender.errors import FaceGenderError
    from facegender.faces import detect
    from facegender.runtime.predict import predict

    read = []
    monkeypatch.setattr(detect, "load_image", lambda path: read.append(path))  # where read_faces reads a photo
    photo = grey_photo(tmp_path / "a.png", 128)
    with pytest.raises(FaceGenderError, match="cannot write to"):
        list(predict([str(photo)], brightness_model(), detect="off", output=photo / "x.json"))
    with pytest.raises(FaceGenderError, match="is a folder"):
        list(predict([str(photo)], brightness_model(), detect="off", output=tmp_path))
    assert read == []


def test_an_empty_output_name_is_refused(tmp_path, brightness_model):
    photo = grey_photo(tmp_path / "a.png", 128)
    result = predict_cli(brightness_model(), str(photo), "--output", "")
    assert_clean_error(result, "--output is an empty name", "unset shell variable")
    assert result.stdout == ""


@pytest.fixture
def service(brightness_model):
    """The web service on the brightness model, 50 kB uploads, 3 files a batch."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facegender.serve.app import create_app

    return TestClient(create_app(brightness_model(), max_upload_mb=0.05, max_batch_files=3))


def asgi_post(app, path: str, chunks, headers: dict[str, str]) -> tuple[int, dict, int]:
    """POST a body streamed from `chunks` straight to the ASGI app, as a server hands it over (the test client reads
    a whole body first): (status, JSON answer, how many chunks the app pulled)."""
    import anyio

    pulled, status, answer = [0], [0], []
    chunks = iter(chunks)

    async def receive() -> dict:
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled[0] += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"detect=off", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
    anyio.run(app, scope, receive, send)
    return status[0], json.loads(b"".join(answer)), pulled[0]


@pytest.mark.parametrize("route", ["/predict", "/predict/batch"])
def test_a_streamed_body_over_the_limit_is_refused_before_it_is_stored(service, route):
    def body():  # chunked, without a Content-Length: 50 MB if all of it were read
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
        for _ in range(800):
            yield b"\0" * 65536

    headers = {"Content-Type": "multipart/form-data; boundary=x", "Transfer-Encoding": "chunked"}
    status, answer, pulled = asgi_post(service.app, route, body(), headers)
    assert status == 413 and "larger than" in answer["error"]
    assert pulled < 20  # stopped at the limit (0.4 MB for a batch of 3), not after 50 MB


def test_a_declared_content_length_over_the_limit_is_refused_at_once(service):
    headers = {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(3 * 1024**3)}
    response = service.post("/predict", content=b"--x--\r\n", headers=headers)
    assert response.status_code == 413 and "larger than" in response.json()["error"]
    ok = service.post("/predict?detect=off", files={"file": ("a.png", grey_photo(io.BytesIO(), 128).getvalue())})
    assert ok.status_code == 200 and ok.json()["results"][0]["p_male"] == 0.5


@pytest.mark.parametrize("batch", [1, 2])
def test_a_model_exported_for_a_fixed_batch_runs_any_number_of_photos(tmp_path, batch):
    pytest.importorskip("onnx")
    from conftest import brightness_onnx

    meta = {"class_names": ["female", "male"], "image_size": 32}
    model = brightness_onnx(tmp_path / "fixed.onnx", meta, batch=batch)
    photos = [str(grey_photo(tmp_path / f"{level}.png", level)) for level in (64, 128, 192)]
    result = predict_cli(model, *photos, "--batch-size", "32")
    assert result.returncode == 0, result.stderr
    assert [row["p_male"] for row in json.loads(result.stdout)] == [0.25, 0.5, 0.75]


def test_a_face_detector_passed_as_the_model_is_refused_at_load(tmp_path):
    from facegender.faces.detect import DETECTOR_DIR

    photo = grey_photo(tmp_path / "a.png", 128)
    for detector in sorted(DETECTOR_DIR.glob("*.onnx")):
        result = cli("predict", str(photo), "--model", str(detector), "--format", "json")
        assert_clean_error(result, str(detector), "not a facegender classifier")
        assert result.stdout == ""


def test_a_model_whose_output_is_not_a_probability_never_reports_one(tmp_path):
    pytest.importorskip("onnx")
    from conftest import brightness_onnx

    model = brightness_onnx(tmp_path / "logits.onnx", {"class_names": ["female", "male"], "image_size": 32}, scale=0.1)
    result = predict_cli(model, str(grey_photo(tmp_path / "a.png", 128)))
    assert_clean_error(result, str(model), "not a probability in [0, 1]")
    assert result.stdout == ""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facegender.serve.app import create_app

    photo = grey_photo(io.BytesIO(), 128).getvalue()
    answer = TestClient(create_app(model)).post("/predict?detect=off", files={"file": ("a.png", photo)})
    assert answer.status_code == 500 and "not a probability in [0, 1]" in answer.json()["error"]


def damaged_dds() -> bytes:
    """A DDS header with pixel-format flags 0: Pillow raises NotImplementedError for it, not an OSError."""
    import struct

    header = struct.pack("<7I", 124, 0x1007, 4, 4, 16, 0, 0) + b"\0" * 44 + struct.pack("<8I", 32, *[0] * 7)
    return b"DDS " + header + struct.pack("<5I", 0x1000, 0, 0, 0, 0) + b"\0" * 64


def test_a_photo_that_breaks_its_decoder_is_that_photos_error_never_the_requests(service, tmp_path, brightness_model):
    one = service.post("/predict?detect=off", files={"file": ("bad.dds", damaged_dds())})
    assert one.status_code == 415 and one.json()["error"].startswith("bad.dds: could not decode image")
    good = grey_photo(io.BytesIO(), 128).getvalue()
    files = [("files", ("a.png", good)), ("files", ("bad.dds", damaged_dds())), ("files", ("b.png", good))]
    rows = service.post("/predict/batch?detect=off", files=files).json()["results"]
    assert [(r["file"], r["label"]) for r in rows] == [("a.png", "male"), ("bad.dds", "error"), ("b.png", "male")]
    assert "NotImplementedError" in rows[1]["error"]
    (tmp_path / "bad.dds").write_bytes(damaged_dds())  # the CLI too: named, exit 1
    result = predict_cli(brightness_model(), str(tmp_path / "bad.dds"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert json.loads(result.stdout)[0]["label"] == "error"


def test_an_empty_file_in_a_batch_is_that_files_error_row(service):
    good = grey_photo(io.BytesIO(), 128).getvalue()
    files = [("files", ("a.png", good)), ("files", ("empty.png", b"")), ("files", ("junk.png", b"junk"))]
    response = service.post("/predict/batch?detect=off", files=files)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["file"], r["label"]) for r in rows] == [("a.png", "male"), ("empty.png", "error"), ("junk.png", "error")]
    assert "empty upload" in rows[1]["error"]
    one = service.post("/predict?detect=off", files={"file": ("empty.png", b"")})
    assert one.status_code == 415 and "empty upload" in one.json()["error"]


def test_any_exception_on_one_upload_is_its_error_row(service, monkeypatch):
    from facegender.serve import app as serve

    decode = serve.decode_image

    def fragile(data: bytes, name: str):
        if name == "boom.png":
            raise MemoryError("out of memory")
        return decode(data, name)

    monkeypatch.setattr(serve, "decode_image", fragile)
    good = grey_photo(io.BytesIO(), 128).getvalue()
    rows = service.post("/predict/batch?detect=off", files=[("files", ("boom.png", good)), ("files", ("a.png", good))])
    assert [(r["file"], r["label"]) for r in rows.json()["results"]] == [("boom.png", "error"), ("a.png", "male")]


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_a_keras_model_on_the_inference_install_names_the_train_extra(tmp_path, command):
    from conftest import make_dataset

    model = tmp_path / "model.keras"
    model.write_bytes(b"PK\x03\x04 a Keras zip")  # never opened: the check comes first
    photo = grey_photo(tmp_path / "a.png", 128)
    args = {"predict": ["predict", str(photo)],
            "evaluate": ["evaluate", "--data", str(make_dataset(tmp_path / "d", 2, 2)), "--out", str(tmp_path / "e")],
            "serve": ["serve", "--port", "0"]}[command]  # fmt: skip
    # as without TensorFlow and Keras: importing them fails, find_spec says they are missing
    blocked = "import sys; sys.modules.update(tensorflow=None, keras=None); from facegender.cli import main; "
    command = [sys.executable, "-c", blocked + "sys.exit(main(sys.argv[1:]))", *args, "--model", str(model)]
    result = subprocess.run(command, capture_output=True, text=True, env=CLI_ENV, timeout=120)
    assert_clean_error(result, str(model), "pip install 'facegender[train]'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreadable_subfolder_is_named_and_exits_1(tmp_path, brightness_model):
    from conftest import make_dataset

    prefix = bound_by_permission_bits()
    data = make_dataset(tmp_path / "d", 3, 3)
    hidden = data / "male" / "sub"
    hidden.mkdir()
    grey_photo(hidden / "x.png", 128)
    hidden.chmod(0)
    try:
        model = str(brightness_model())
        run = [*prefix, sys.executable, "-m", "facegender"]
        predict = subprocess.run([*run, "predict", str(data), "--model", model, "--no-detect", "--format", "json"],
                                 capture_output=True, text=True, env=CLI_ENV, timeout=120)  # fmt: skip
        assert predict.returncode == 1 and "Traceback" not in predict.stderr, predict.stderr
        assert f"could not read {hidden}: folder cannot be read (permission denied)" in predict.stderr
        assert len(json.loads(predict.stdout)) == 7  # 6 photos and the folder's error row
        args = ["evaluate", "--data", str(data), "--model", model, "--out", str(tmp_path / "e")]
        evaluate = subprocess.run([*run, *args], capture_output=True, text=True, env=CLI_ENV, timeout=300)
        assert evaluate.returncode == 1 and "Traceback" not in evaluate.stderr, evaluate.stderr
        assert f"skipped {hidden}: folder cannot be read" in evaluate.stderr and " n 6 " in evaluate.stdout
    finally:
        hidden.chmod(0o755)


@pytest.mark.parametrize("out", ["MALE/report", "Male", "female/x", "FEMALE"])
def test_an_out_folder_in_another_case_of_a_class_folder_is_refused(tmp_path, brightness_model, out):
    from conftest import make_dataset

    data = make_dataset(tmp_path / "d", 2, 2)
    result = cli("evaluate", "--data", str(data), "--model", str(brightness_model()), "--out", str(data / out))
    assert_clean_error(result, "is inside the class folder", "outside the dataset's class folders")
    assert sorted(p.name for p in data.iterdir()) == ["female", "labels.csv", "male"]


def test_labels_csv_with_a_header_and_no_rows_says_so(tmp_path, brightness_model):
    from conftest import make_dataset

    data = make_dataset(tmp_path / "d", 2, 2)
    (data / "labels.csv").write_text("file,condition\n", encoding="utf-8")
    result = cli("evaluate", "--data", str(data), "--model", str(brightness_model()), "--out", str(tmp_path / "e"))
    assert_clean_error(result, f"{data / 'labels.csv'} has a header but no rows")
    assert "needs a header row" not in result.stderr


def test_misclassified_photos_of_one_name_in_two_subfolders_are_both_kept(tmp_path, brightness_model):
    import csv

    data = tmp_path / "d"
    for folder, level in (("female/a", 200), ("female/b", 220), ("male/a", 30), ("male/b", 40)):
        (data / folder).mkdir(parents=True)
        grey_photo(data / folder / "x.png", level)  # every photo the wrong side of 0.5
    out = tmp_path / "e"
    result = cli("evaluate", "--data", str(data), "--model", str(brightness_model()), "--out", str(out))
    assert result.returncode == 0, result.stderr
    with (out / "misclassified" / "misclassified.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = [row["file"] for row in rows]
    assert len(rows) == 4 and len(set(names)) == 4, names
    copies = sorted(p.name for p in (out / "misclassified").iterdir() if p.suffix == ".png")
    assert copies == sorted(names)
    from PIL import Image

    levels = {"female/a": 200, "female/b": 220, "male/a": 30, "male/b": 40}
    for row in rows:  # each copy is the photo its row names
        level = levels[Path(row["source"]).parent.relative_to(data).as_posix()]
        assert Image.open(out / "misclassified" / row["file"]).getpixel((0, 0)) == (level,) * 3
