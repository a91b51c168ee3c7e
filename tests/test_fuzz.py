"""Acceptance of issue 16: mutated photos of every format through predict and serve never give a traceback, a 5xx,
a probability outside [0, 1] or a lost input file."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import CLI_ENV
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "GIF", "TIFF", "DDS", "ICO", "PPM")


def photo(fmt: str, seed: int) -> bytes:
    """A small generated photo: a noisy background with a face-like oval, saved as `fmt`."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))
    ImageDraw.Draw(image).ellipse([10, 8, 30, 36], fill=(220, 180, 150))
    buffer = io.BytesIO()
    image.convert("RGBA" if fmt == "DDS" else "RGB").save(buffer, fmt)
    return buffer.getvalue()


mutations = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8)


def mutate(data: bytes, changes: list[tuple[float, int]], cut: float) -> bytes:
    buffer = bytearray(data)
    for where, value in changes:
        buffer[int(where * len(buffer))] = value
    return bytes(buffer[: max(0, int(cut * len(buffer)))]) if cut < 1 else bytes(buffer)


cases = st.lists(
    st.tuples(st.sampled_from(FORMATS), st.integers(0, 3), mutations, st.sampled_from([1.0, 1.0, 0.9, 0.5, 0.02, 0])),
    min_size=6,
    max_size=6,
)


@given(cases)
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
def test_mutated_photos_through_predict_and_serve(tmp_path_factory, brightness_model, case):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facegender.runtime.predict import predict
    from facegender.serve.app import create_app

    folder = tmp_path_factory.mktemp("fuzz")
    uploads = []
    for i, (fmt, seed, changes, cut) in enumerate(case):
        data = mutate(photo(fmt, seed), changes, cut)
        (folder / f"{i}.{'png' if fmt in ('GIF', 'TIFF', 'DDS', 'ICO', 'PPM') else fmt.lower()}").write_bytes(data)
        uploads.append((f"{i}.{fmt.lower()}", data))
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    model = brightness_model()

    for detect in ("off", "auto"):
        rows = list(predict([str(folder)], model, detect=detect))
        assert {row["file"].rsplit("/", 1)[-1] for row in rows} == set(before)  # every photo answered
        for row in rows:
            assert row["label"] in ("female", "male", "no_face", "error"), row
            assert row["p_male"] is None or 0 <= row["p_male"] <= 1, row
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before  # nothing lost or changed

    client = TestClient(create_app(model, max_batch_files=6), raise_server_exceptions=False)
    batch = client.post("/predict/batch", files=[("files", upload) for upload in uploads])
    assert batch.status_code == 200, batch.text
    assert [row["file"] for row in batch.json()["results"] if row["face_index"] in (None, 0)] == [
        name for name, _ in uploads
    ]
    for name, data in uploads[:2]:
        one = client.post("/predict?detect=off", files={"file": (name, data)})
        assert one.status_code in (200, 415), one.text
        assert "error" in one.json() or 0 <= one.json()["results"][0]["p_male"] <= 1


def test_mutated_photos_through_the_cli_exit_0_or_1_without_a_traceback(tmp_path, brightness_model):
    rng = np.random.default_rng(16)
    for i, fmt in enumerate(FORMATS * 2):
        data = bytearray(photo(fmt, i))
        for _ in range(i % 5):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        (tmp_path / f"{i}.png").write_bytes(bytes(data[: len(data) if i % 3 else len(data) // 2]))
    before = {path.name: path.read_bytes() for path in tmp_path.glob("*.png")}
    command = [sys.executable, "-m", "facegender", "predict", str(tmp_path), "--model", str(brightness_model()),
               "--format", "json", "--output", str(tmp_path / "out.json")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=CLI_ENV, timeout=120)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    rows = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert {row["file"].rsplit("/", 1)[-1] for row in rows} == set(before)
    assert {path.name: path.read_bytes() for path in tmp_path.glob("*.png")} == before
