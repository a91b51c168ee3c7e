"""Loading a trained model with its metadata and running it on images.

An exported `.onnx` model runs under ONNX Runtime and this path never imports TensorFlow.
A `.keras` or `.h5` model runs under Keras (imported only then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from facegender.errors import FaceGenderError, ImageError
from facegender.faces.detect import MIN_SCORE, FaceDetector, FaceInput, face_inputs, read_faces
from facegender.runtime.calibration import apply_temperature
from facegender.runtime.schema import ModelInfo, read_metadata, resolve_model_path
from facegender.system import onnx_session, usable_cpus


def _fit_input_size(info: ModelInfo, source: str, path: Path, shape: Any) -> ModelInfo:
    """Check the network's input shape (batch, height, width, 3) against the metadata's image_size.

    Metadata without an image_size takes the network's own fixed size: the only one it runs at. A stated size the
    network cannot take is refused here, at load, rather than failing on every batch.
    """
    try:
        dims = [d if isinstance(d, int) and d > 0 else None for d in shape]  # names, None or -1: any size
    except TypeError:
        return info  # a shape the runtime does not report: nothing to check
    if len(dims) != 4 or dims[3] not in (None, 3):
        raise FaceGenderError(
            f"{path} takes inputs of shape {list(shape)}, not (batch, size, size, 3) RGB images; "
            "is it a facegender model? Re-export it with facegender export"
        )
    fixed = {d for d in dims[1:3] if d is not None}
    if len(fixed) > 1:
        raise FaceGenderError(f"{path} takes {dims[1]}x{dims[2]} inputs; facegender feeds square images. Re-export it")
    if not fixed:
        return info
    size = fixed.pop()
    if "image_size" not in info.extra:
        info.image_size = size
    elif size != info.image_size:
        raise FaceGenderError(
            f"{source} says image_size {info.image_size} but the network in {path} takes {size}x{size} px inputs; "
            f"set image_size to {size} there if it was trained at that size, or re-export the model"
        )
    return info


def _check_output_shape(path: Path, shape: Any) -> None:
    """A classifier gives one p(male) per image: (batch, 1) or (batch,). A face detector's boxes are refused here,
    at load, rather than read as probabilities."""
    try:
        dims = list(shape)
    except TypeError:
        return  # a shape the runtime does not report: the values are checked instead
    per_image = [d for d in dims[1:] if not (isinstance(d, int) and d == 1)]
    if not 1 <= len(dims) <= 2 or per_image:
        raise FaceGenderError(
            f"{path} outputs shape {dims}, not one p(male) per image (batch, 1): it is not a facegender classifier "
            "(a face detector?); pass a model made by facegender train or export"
        )


# The one hook between the runtime and TensorFlow: the runtime never imports training/ or TensorFlow (an
# import-linter contract checks it), so a Keras model is loaded by the function that pyproject.toml registers
# under this entry-point group (training.model.load_keras_model), looked up only when a .keras/.h5 file is given.
KERAS_LOADER_GROUP = "facegender.keras_loader"


def _keras_loader() -> Callable[[Path], Any]:
    from importlib.metadata import entry_points

    found = list(entry_points(group=KERAS_LOADER_GROUP))
    if not found:
        raise FaceGenderError(
            f"this install registers no Keras loader (entry point group {KERAS_LOADER_GROUP}): reinstall facegender "
            "with pip install 'facegender[train]', or pass an ONNX model"
        )
    return found[0].load()


class Classifier:
    """A loaded model: `predict(batch)` returns p(male) for uint8 RGB images of shape (N, S, S, 3)."""

    def __init__(self, path: Path, info: ModelInfo, run: Callable[[np.ndarray], np.ndarray], backend: str):
        self.path = path
        self.info = info
        self.backend = backend
        self._run = run
        self._detector: FaceDetector | None = None

    @classmethod
    def load(cls, model: str | Path | None = None, threads: int | None = None) -> Classifier:
        path = resolve_model_path(model)
        if path.suffix.lower() == ".onnx":
            return cls._load_onnx(path, threads)
        if path.suffix.lower() == ".tflite":
            return cls._load_tflite(path, threads)
        return cls._load_keras(path)

    @classmethod
    def _load_onnx(cls, path: Path, threads: int | None) -> Classifier:
        try:
            session = onnx_session(path, threads)
        except Exception as exc:
            raise FaceGenderError(f"could not load ONNX model {path}: {exc}. Re-export it.") from exc
        info, source = read_metadata(path, session.get_modelmeta().custom_metadata_map)
        network_input = session.get_inputs()[0]
        info = _fit_input_size(info, source, path, network_input.shape)
        _check_output_shape(path, session.get_outputs()[0].shape)
        input_name = network_input.name
        fixed = network_input.shape[0]
        step = fixed if isinstance(fixed, int) and fixed > 0 else None  # a network exported for N images a call

        def run(batch: np.ndarray) -> np.ndarray:
            batch = batch.astype(np.float32)
            if step is None:
                return session.run(None, {input_name: batch})[0].reshape(-1)
            out = []
            for start in range(0, len(batch), step):
                part = batch[start : start + step]
                padded = np.concatenate([part, np.repeat(part[-1:], step - len(part), axis=0)])  # the last call
                out.append(session.run(None, {input_name: padded})[0].reshape(-1)[: len(part)])
            return np.concatenate(out)

        return cls(path, info, run, "onnxruntime")

    @classmethod
    def _load_tflite(cls, path: Path, threads: int | None) -> Classifier:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise FaceGenderError("running .tflite models needs LiteRT: pip install ai-edge-litert") from exc
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=threads or usable_cpus())
        except Exception as exc:
            raise FaceGenderError(f"could not load LiteRT model {path}: {exc}. Re-export it.") from exc
        details = interpreter.get_input_details()[0]
        info, source = read_metadata(path)
        info = _fit_input_size(info, source, path, [int(d) for d in details.get("shape_signature", details["shape"])])
        input_index = details["index"]
        output_index = interpreter.get_output_details()[0]["index"]
        shape = [0]

        def run(batch: np.ndarray) -> np.ndarray:
            if shape[0] != len(batch):  # the exported signature has a fixed batch size: resize when it changes
                interpreter.resize_tensor_input(input_index, list(batch.shape))
                interpreter.allocate_tensors()
                shape[0] = len(batch)
            interpreter.set_tensor(input_index, batch.astype(np.float32))
            interpreter.invoke()
            return interpreter.get_tensor(output_index).reshape(-1).copy()

        return cls(path, info, run, "litert")

    @classmethod
    def _load_keras(cls, path: Path) -> Classifier:
        import importlib.util

        missing = [name for name in ("tensorflow", "keras") if importlib.util.find_spec(name) is None]
        if missing:  # the inference install: a clear line, not an ImportError from deep inside
            raise FaceGenderError(
                f"running the Keras model {path} needs {', '.join(missing)}: install it with pip install "
                f"'facegender[train]', or pass the model's ONNX export (facegender export --model {path})"
            )
        keras_model = _keras_loader()(path)
        info, source = read_metadata(path)
        info = _fit_input_size(info, source, path, getattr(keras_model, "input_shape", None))

        def run(batch: np.ndarray) -> np.ndarray:
            return np.asarray(keras_model(batch.astype(np.float32), training=False)).reshape(-1)

        return cls(path, info, run, "keras")

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Calibrated p(male) for uint8 RGB images of shape (N, S, S, 3)."""
        if len(images) == 0:
            return np.zeros(0, dtype=np.float32)
        p = self._run(images)
        if len(p) != len(images) or not np.all((p >= 0) & (p <= 1)):  # NaN fails this too
            shown = ", ".join(f"{v:.4g}" for v in p[:3])
            raise FaceGenderError(
                f"{self.path} gave {len(p)} value(s) for {len(images)} image(s) ({shown}, ...), not a probability in "
                "[0, 1] for each: it is not a facegender classifier; pass a model made by facegender train or export"
            )
        return p if self.info.temperature == 1.0 else apply_temperature(p, self.info.temperature)

    def photo_input(self, image: np.ndarray) -> np.ndarray:
        """The network's input for one labelled face photo, read as the model's training photos were."""
        if self.info.face_crops and self._detector is None:
            self._detector = FaceDetector(threads=1)
        mode = "auto" if self.info.face_crops else "off"
        size, crop = self.info.image_size, self.info.crop
        faces = face_inputs(image, size, crop, self._detector, mode, self.info.face_crops, True, self.info.face_scale)
        return faces[0].image

    def predict_files(
        self,
        files: list[Path],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
        workers: int | None = None,
        no_face: list[int] | None = None,
    ) -> Iterator[tuple[int, float | ImageError]]:
        """Yield (index, p_male or ImageError) for each file, read as the model's training photos were.

        Each file is one face photo: the whole photo, or for a model trained with face_crops its face framed
        as in training (the whole photo where none is found; those files' indices are appended to `no_face`).
        """
        detect = "auto" if self.info.face_crops else "off"
        for index, result in self.predict_faces(files, batch_size, progress, workers, detect, whole_if_none=True):
            if isinstance(result, ImageError):
                yield index, result
                continue
            _, p_male, face_score = result[0]
            if detect != "off" and face_score is None and no_face is not None:
                no_face.append(index)
            yield index, p_male

    def predict_faces(
        self,
        files: list[Path],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
        workers: int | None = None,
        detect: str = "auto",
        min_face_score: float | None = None,
        whole_if_none: bool = False,
        detector: FaceDetector | None = None,
    ) -> Iterator[tuple[int, list[tuple[tuple[int, int, int, int], float, float | None]] | ImageError]]:
        """Yield (index, [(box, p_male, face_score) per face] or ImageError) for each file, in order.

        `detect` is a detect.face_inputs mode; a photo without a face gives an empty list (unless
        whole_if_none). face_score is the detector's confidence, None for a whole photo taken as one face.
        `detector` is one to reuse (a Ray worker loads its own once); by default one is made for this call. Files
        are decoded (and faces found) in threads, the next chunk while the model runs on this one, so memory holds
        at most two chunks whatever the number of files.
        """
        workers = workers or min(8, usable_cpus() * 2)
        size, crop, face_crops = self.info.image_size, self.info.crop, self.info.face_crops
        if detect != "off" and detector is None:  # one ONNX Runtime thread each: the files run in parallel instead
            detector = FaceDetector(MIN_SCORE if min_face_score is None else min_face_score, threads=1)

        def work(path: Path) -> list[FaceInput] | ImageError:
            return read_faces(path, size, crop, detector, detect, face_crops, whole_if_none, self.info.face_scale)

        chunk = 8 * batch_size
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = [pool.submit(work, f) for f in files[:chunk]]
            for start in range(0, len(files), chunk):
                results = [future.result() for future in pending]
                pending = [pool.submit(work, f) for f in files[start + chunk : start + 2 * chunk]]
                faces = [face for r in results if not isinstance(r, ImageError) for face in r]
                probs: list[float] = []
                for b in range(0, len(faces), batch_size):
                    probs.extend(float(p) for p in self.predict(np.stack([f.image for f in faces[b : b + batch_size]])))
                scores = iter(probs)
                for i, result in enumerate(results):
                    if isinstance(result, ImageError):
                        yield start + i, result
                    else:
                        yield start + i, [(face.box, next(scores), face.score) for face in result]
                if progress is not None:
                    progress(len(results))
