"""Shared fixtures: tiny generated datasets (no committed binaries) and the ../shared data location."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LFW = SHARED / "data" / "lfw-adverse"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@pytest.fixture(scope="module")
def one_ray_cluster_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The test files that start Ray clusters take turns: under pytest-xdist (the README's test command runs two
    processes, each test file whole on one) two clusters at once would starve each other on two cores. The lock
    file lies in the folder that holds every process's temporary folder."""
    import fcntl

    with (tmp_path_factory.getbasetemp().parent / "ray-tests.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def package_photo(package: str, relative: str) -> Path:
    """A real photo that ships inside an installed package (found without importing the package), or skip.

    matplotlib's sample_data/grace_hopper.jpg is a portrait with one face (512x600); scikit-learn's
    datasets/images/china.jpg (a temple) and flower.jpg hold none. Both packages come with the `eval` extra.
    """
    import importlib.util

    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent / relative if spec and spec.origin else None
    if path is None or not path.is_file():
        pytest.skip(f"{package} with {relative} is not installed (pip install -e '.[eval]')")
    return path


def portrait() -> Path:
    return package_photo("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")


def no_face_photo() -> Path:
    return package_photo("sklearn", "datasets/images/china.jpg")


def synthetic_face(label: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """A learnable stand-in: 'female' draws a warm ellipse, 'male' a cool rectangle, on noise."""
    noise = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    draw = ImageDraw.Draw(image)
    a, b = int(size * 0.25), int(size * 0.75)
    if label == "female":
        draw.ellipse([a, a, b, b], fill=(230, int(rng.integers(80, 140)), 90))
    else:
        draw.rectangle([a, a, b, b], fill=(70, int(rng.integers(80, 140)), 230))
    return image


def make_dataset(root: Path, n_female: int = 6, n_male: int = 8, seed: int = 0, size: int = 48) -> Path:
    """root/female/*.jpg, root/male/*.png and a labels.csv with condition and identity columns."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, count, ext in (("female", n_female, ".jpg"), ("male", n_male, ".png")):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            name = f"{label}/{label}_{seed}_{i}{ext}"
            synthetic_face(label, rng, size).save(root / name)
            rows.append(
                {"file": name, "gender": label, "identity": f"{label}{i // 2}", "condition": ["clean", "foggy"][i % 2]}
            )
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "gender", "identity", "condition"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


def requires_shared(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"needs {path} (the ../shared folder beside the project)")


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> Path:
    """A small exported model (64 px, untrained) with its metadata: enough to exercise predict and serve."""
    pytest.importorskip("keras")
    from facegender import config as cfg
    from facegender.training.export import export_onnx
    from facegender.training.model import build_model

    folder = tmp_path_factory.mktemp("onnx_model")
    model = build_model(cfg.resolve("seed", {"image_size": 64, "backbone_weights": "none"}))
    meta = {"name": "tiny", "class_names": ["female", "male"], "threshold": 0.5, "image_size": 64, "crop": 1.0}
    return export_onnx(model, folder / "model.onnx", meta)


def png_bytes(label: str = "female", seed: int = 0) -> bytes:
    import io

    buffer = io.BytesIO()
    synthetic_face(label, np.random.default_rng(seed), 64).save(buffer, "PNG")
    return buffer.getvalue()


CLI_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m facegender ARGS` as a user runs it, output captured."""
    return subprocess.run([sys.executable, "-m", "facegender", *args], capture_output=True, text=True, env=CLI_ENV,
                          timeout=300)  # fmt: skip


def interrupt_at(
    command: list[str], is_the_line: Callable[[str], bool], sig: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `command` and send it `sig` as soon as a line of its stderr satisfies `is_the_line`: a line read, not a
    clock (no sleeps). The result's stderr holds every line, those before the signal included."""
    import threading

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or CLI_ENV)
    watchdog = threading.Timer(600, process.kill)  # a run that hangs ends its pipe, and the test with it
    watchdog.start()
    seen: list[str] = []
    try:
        for line in process.stderr:  # blocks until the next line, or the end of the run
            seen.append(line)
            if is_the_line(line):
                break
        assert process.poll() is None, "the command ended before it could be interrupted:\n" + "".join(seen[-30:])
        process.send_signal(sig)
        out, err = process.communicate(timeout=180)
    finally:
        watchdog.cancel()
        process.kill()
        process.wait(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, out, "".join(seen) + err)


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, no traceback, and the message holds every fragment."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def image(tmp_path) -> Path:
    """One small generated photo."""
    path = tmp_path / "face.png"
    path.write_bytes(png_bytes())
    return path


def brightness_onnx(
    path: Path, metadata: dict | None, image_size: int = 32, batch: int | str = "batch", scale: float = 1 / 256
) -> Path:
    """An ONNX model whose p(male) is a known function of its input: the mean of the 0-255 pixel values / 256.

    A photo of one grey level g gives exactly g / 256 (128 -> 0.5, 192 -> 0.75): sums of equal whole numbers and a
    power-of-two divisor are exact in float32, so tests compare the runtime's numbers with values worked out by hand.
    `metadata` is embedded as the facegender export embeds it (None: no metadata at all). `batch` a whole number
    makes a network exported for that many images a call; another `scale` one whose output is not a probability.
    """
    import json

    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, image_size, image_size, 3])
    p_male = helper.make_tensor_value_info("p_male", TensorProto.FLOAT, [batch, 1])
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [scale])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),  # (batch,)
        helper.make_node("Mul", ["mean", "scale"], ["p"]),
        helper.make_node("Unsqueeze", ["p", "axis"], ["p_male"]),  # (batch, 1), as the exported Keras model
    ]
    axis = helper.make_tensor("axis", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(nodes, "brightness", [image], [p_male], initializer=[scale, axis])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="facegender-tests")
    model.ir_version = 8  # one every supported ONNX Runtime reads
    if metadata is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "facegender", json.dumps(metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def brightness_model(tmp_path):
    """Make a brightness_onnx model in tmp_path: brightness_model(threshold=0.6, temperature=2.0) -> its path.

    The keyword arguments are its facegender metadata, over a 32 px, whole-photo, threshold 0.5, temperature 1 base.
    """
    pytest.importorskip("onnx")
    made = iter(range(1000))

    def make(image_size: int = 32, **metadata) -> Path:
        meta = {"format_version": 1, "name": "brightness", "class_names": ["female", "male"],
                "image_size": image_size, "crop": 1.0, "threshold": 0.5, "temperature": 1.0, **metadata}  # fmt: skip
        return brightness_onnx(tmp_path / f"brightness{next(made)}.onnx", meta, image_size)

    return make


def grey_photo(path, level: int, size: tuple[int, int] = (40, 32)):
    """A PNG (lossless) of one grey level, width x height, into a file or buffer: the brightness model's p(male)
    for it is level / 256."""
    Image.new("RGB", size, (level, level, level)).save(path, "PNG")
    return path
