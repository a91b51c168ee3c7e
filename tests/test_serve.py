"""The web service: every route and error through FastAPI's test client, a live server in chromium, schemathesis."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from conftest import no_face_photo, package_photo, png_bytes, portrait
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from facegender.faces.detect import MIN_SCORE
from facegender.serve.app import create_app


@pytest.fixture(scope="module")
def client(onnx_model):
    return TestClient(create_app(onnx_model, max_upload_mb=0.05, max_batch_files=3))


def test_health(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model"] == "tiny" and body["threshold"] == 0.5
    assert body["backend"] == "onnxruntime" and body["version"]


def jpeg(path, width: int) -> bytes:
    """A real photo scaled down under the test client's 50 kB upload limit."""
    image = Image.open(path)
    buffer = io.BytesIO()
    image.resize((width, round(image.height * width / image.width))).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_predict_one_image_as_a_face_crop(client):
    response = client.post("/predict?detect=off", files={"file": ("face.png", png_bytes(), "image/png")})
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert row["file"] == "face.png" and row["label"] in ("female", "male") and 0 <= row["p_male"] <= 1
    assert row["box"] == [0, 0, 64, 64] and row["face_index"] == 0
    assert set(row) == {"file", "face_index", "box", "face_score", "label", "p_male", "threshold", "error"}
    assert row["face_score"] is None  # no detector looked


def test_predict_finds_faces(client):
    rows = client.post("/predict", files={"file": ("p.jpg", jpeg(portrait(), 256), "image/jpeg")}).json()["results"]
    (row,) = rows  # the portrait, 256 x 300: one face around (132, 120)
    x, y, w, h = row["box"]
    assert 100 < x + w / 2 < 160 and 90 < y + h / 2 < 150 and row["label"] in ("female", "male")
    files = [("files", ("temple.jpg", jpeg(no_face_photo(), 320), "image/jpeg")),
             ("files", ("synthetic.png", png_bytes(), "image/png"))]  # fmt: skip
    rows = client.post("/predict/batch", files=files).json()["results"]
    assert [(r["file"], r["label"], r["box"]) for r in rows] == [("temple.jpg", "no_face", None),
                                                                 ("synthetic.png", "no_face", None)]  # fmt: skip
    assert client.post("/predict?detect=sometimes", files=files[1:]).status_code == 422
    unsure = client.post("/predict?detect=off&abstain_band=0,1", files={"file": ("s.png", png_bytes(), "image/png")})
    assert unsure.json()["results"][0]["label"] == "uncertain"
    bad_band = client.post("/predict?abstain_band=0.7,0.2", files={"file": ("s.png", png_bytes(), "image/png")})
    assert bad_band.status_code == 422 and "abstain_band" in bad_band.json()["error"]


def test_results_carry_the_face_score_and_a_flower_gets_no_face(client):
    (face,) = client.post("/predict", files={"file": ("p.jpg", jpeg(portrait(), 256), "image/jpeg")}).json()["results"]
    assert MIN_SCORE <= face["face_score"] <= 1 and face["label"] in ("female", "male")
    flower = jpeg(package_photo("sklearn", "datasets/images/flower.jpg"), 320)
    (none,) = client.post("/predict", files={"file": ("flower.jpg", flower, "image/jpeg")}).json()["results"]
    assert none["label"] == "no_face" and none["face_score"] is None and none["p_male"] is None
    files = [("files", ("p.jpg", jpeg(portrait(), 256), "image/jpeg")), ("files", ("bad.png", b"x", "image/png"))]
    rows = client.post("/predict/batch", files=files).json()["results"]
    assert rows[0]["face_score"] == face["face_score"] and rows[1]["label"] == "error" and rows[1]["face_score"] is None


def test_content_is_checked_by_decoding_not_by_name(client):
    response = client.post("/predict", files={"file": ("photo.jpg", b"<html>hello</html>", "image/jpeg")})
    assert response.status_code == 415
    assert "photo.jpg" in response.json()["error"]
    png_named_txt = client.post("/predict?detect=off", files={"file": ("notes.txt", png_bytes(), "text/plain")})
    assert png_named_txt.status_code == 200


def test_upload_limit_and_empty_upload(client):
    big = client.post("/predict", files={"file": ("big.png", b"\0" * 60_000, "image/png")})
    assert big.status_code == 413 and "larger than" in big.json()["error"]
    empty = client.post("/predict", files={"file": ("e.png", b"", "image/png")})
    assert empty.status_code == 415


def test_batch_mixes_good_and_bad_and_is_limited(client):
    files = [("files", ("a.png", png_bytes("female", 1), "image/png")),
             ("files", ("b.png", png_bytes("male", 2), "image/png")),
             ("files", ("c.jpg", b"garbage", "image/jpeg"))]  # fmt: skip
    rows = client.post("/predict/batch?detect=off", files=files).json()["results"]
    assert [r["file"] for r in rows] == ["a.png", "b.png", "c.jpg"]
    assert [r["label"] in ("female", "male") for r in rows] == [True, True, False]
    assert rows[2]["label"] == "error" and rows[2]["p_male"] is None and rows[2]["error"]
    too_many = client.post("/predict/batch", files=[*files, ("files", ("d.png", png_bytes(), "image/png"))])
    assert too_many.status_code == 413 and "limit is 3" in too_many.json()["error"]


def test_errors_are_json_never_traces(client):
    missing = client.post("/predict")
    assert missing.status_code == 422 and "error" in missing.json()
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    assert "Traceback" not in missing.text


def test_page_and_openapi_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/predict", "/predict/batch", "/health", "/"} <= set(paths)
    for route in ("/docs", "/redoc"):  # Swagger UI and ReDoc from the installed fastapi-offline, not a CDN
        docs = client.get(route)
        assert docs.status_code == 200 and "static-offline-docs/" in docs.text
        assert not [url for url in re.findall(r"(?:src|href)=['\"]([^'\"]+)", docs.text) if "//" in url], docs.text
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_schemathesis_fuzz_of_the_api(onnx_model):
    """Random requests generated from the OpenAPI schema: never a 5xx, always JSON or the page."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(onnx_model))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 4
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        def check(case):  # type: ignore[no-untyped-def]
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.text[:200])
            content_type = response.headers["content-type"]
            content_type = content_type[0] if isinstance(content_type, list) else content_type
            assert content_type.startswith(("application/json", "text/html"))

        check()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(onnx_model):
    import httpx

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for _ in range(3):  # another process may take the free port before the server binds it: try a new one
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "facegender", "serve", "--model", str(onnx_model), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            process.kill()
            error = process.communicate(timeout=30)[1].decode(errors="replace")
            if "address already in use" in error.lower():
                continue
            pytest.fail(f"server did not start: {error[-2000:]}")
        break
    else:
        pytest.fail(f"no free port for the server after 3 tries: {error[-500:]}")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def test_page_in_chromium_shows_each_face(live_server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from browser import launch

    face = Image.open(portrait()).resize((256, 300))
    photo = tmp_path / "two.png"
    group = Image.new("RGB", (700, 340), (110, 120, 105))
    group.paste(face, (20, 20))
    group.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (420, 30))
    group.save(photo)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.goto(live_server + "/")
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("#label", timeout=20_000)
        labels = page.locator("#result .label").all_inner_texts()
        assert len(labels) == 2 and set(labels) <= {"female", "male", "uncertain"}
        assert "face 2:" in page.inner_text("#result") and "p(male) =" in page.inner_text("#result")
        # the first face's box is drawn on the canvas: a pixel of its left edge has the label's colour
        x, y, _, h = page.evaluate("fetch('predict', {method: 'POST', body: (() => { const f = new FormData(); "
                                   "f.append('file', document.getElementById('file').files[0]); return f; })()})"
                                   ".then(r => r.json()).then(d => d.results[0].box)")  # fmt: skip
        pixel = page.evaluate(f"Array.from(document.getElementById('canvas').getContext('2d')"
                              f".getImageData({x}, {y + h // 2}, 1, 1).data)")  # fmt: skip
        assert tuple(pixel[:3]) in ((0x1E, 0x6E, 0xE6), (0xE1, 0x28, 0x82), (0x88, 0x88, 0x88)), pixel
        page.set_input_files("#file", str(no_face_photo()))
        no_face = "(document.getElementById('label') || {}).textContent === 'no face found'"
        page.wait_for_function(no_face, timeout=20_000)
        page.screenshot(path=str(tmp_path / "page.png"))
        browser.close()
    assert (tmp_path / "page.png").stat().st_size > 5_000


def test_api_docs_render_in_chromium_offline(live_server):
    """/docs is Swagger UI from the installed package: it renders every route with no network."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from browser import launch

    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(live_server + "/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        browser.close()
    assert {"/predict", "/predict/batch", "/health"} <= {p.strip() for p in paths}
    assert all(url.startswith(live_server) for url in requests), requests


def test_a_missing_detector_fails_only_the_requests_that_detect(onnx_model, tmp_path, monkeypatch):
    import facegender.faces.detect

    monkeypatch.setattr(facegender.faces.detect, "DETECTOR_DIR", tmp_path)  # as if the install lost the files
    client = TestClient(create_app(onnx_model))  # starts: the detector is loaded on first use
    files = {"file": ("face.png", png_bytes(), "image/png")}
    failed = client.post("/predict", files=files)
    assert failed.status_code == 503 and "detect=off" in failed.json()["error"]
    assert client.post("/predict?detect=off", files=files).json()["results"][0]["label"] in ("female", "male")


def serve_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`facegender serve` expected to refuse to start: killed (and the test failed) if it serves instead."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "facegender", "serve", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)  # fmt: skip


def test_a_model_whose_image_size_the_network_cannot_take_is_refused_before_serving(onnx_model, tmp_path):
    import json

    import onnx

    proto = onnx.load(str(onnx_model))
    proto.metadata_props[0].value = json.dumps({**json.loads(proto.metadata_props[0].value), "image_size": 224})
    onnx.save(proto, str(tmp_path / "m224.onnx"))
    result = serve_cli("--model", str(tmp_path / "m224.onnx"), "--port", str(free_port()), timeout=60)
    assert result.returncode == 2 and "serving on" not in result.stdout
    assert "m224.onnx" in result.stderr and "64x64" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-upload-mb", "nan"], "--max-upload-mb"),
        (["--max-upload-mb", "inf"], "--max-upload-mb"),
        (["--port", "99999"], "--port must be between 0 and 65535"),
        (["--port", "-1"], "--port must be between 0 and 65535"),
        (["--host", "not a host!!"], "--host 'not a host!!'"),
    ],
)
def test_bad_serve_options_are_refused_before_serving(onnx_model, args, expected):
    result = serve_cli("--model", str(onnx_model), *args, timeout=60)
    assert result.returncode == 2 and "serving on" not in result.stdout, (result.stdout, result.stderr)
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_port_in_use_is_refused_before_serving(onnx_model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_cli("--model", str(onnx_model), "--port", str(port), timeout=60)
    assert result.returncode == 2 and "serving on" not in result.stdout, (result.stdout, result.stderr)
    assert f"127.0.0.1:{port}" in result.stderr and "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_zero_prints_the_port_it_really_serves_on(onnx_model):
    import httpx

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "facegender", "serve", "--model", str(onnx_model), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = process.stdout.readline()  # blocks until the line or the process's end; killed below either way
        assert line.startswith("serving on http://127.0.0.1:"), (line, process.poll())
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        assert port > 0
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, "the server did not answer"
                time.sleep(0.3)
        assert health.json()["model"] == "tiny"
    finally:
        process.kill()
        process.wait(timeout=30)
