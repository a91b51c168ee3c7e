"""Face detection: the BlazeFace decoder, framing, and predict on real composed photos (one result per face)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import LFW, cli, grey_photo, no_face_photo, portrait, requires_shared
from PIL import Image

from facegender.data import load_images
from facegender.faces.detect import FULL_RANGE, SHORT_RANGE, FaceDetector, _anchors, face_inputs, weighted_nms
from facegender.faces.images import FACE_FRAMING_SIDE, frame_face, load_image, prepare

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def run_predict(*args: str) -> tuple[int, list[dict], str]:
    result = subprocess.run([sys.executable, "-m", "facegender", "predict", *args, "--format", "json"],
                            capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
    return result.returncode, json.loads(result.stdout or "[]"), result.stderr


def bundled_threshold() -> float:
    """The threshold stored in the bundled model, read with ONNX Runtime alone (not facegender's loader)."""
    import onnxruntime

    from facegender.runtime.schema import BUNDLED_MODEL

    session = onnxruntime.InferenceSession(str(BUNDLED_MODEL / "model.onnx"), providers=["CPUExecutionProvider"])
    return json.loads(session.get_modelmeta().custom_metadata_map["facegender"])["threshold"]


def centre(box: list[int] | tuple[int, ...]) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def test_anchor_layout_matches_the_networks(detector):
    # MediaPipe's SSD anchors: 16x16x2 + 8x8x6 for short range, 48x48x1 for full range
    assert _anchors(SHORT_RANGE).shape == (896, 2) and _anchors(FULL_RANGE).shape == (2304, 2)
    for _network, session, anchors in detector._networks:
        assert session.get_outputs()[0].shape[1] == len(anchors) == session.get_outputs()[1].shape[1]
    first = _anchors(SHORT_RANGE)[:4]  # cell (0, 0) twice, then cell (1, 0) twice, in [0, 1]
    np.testing.assert_allclose(first, [[1 / 32, 1 / 32]] * 2 + [[3 / 32, 1 / 32]] * 2)


def test_nested_boxes_are_one_face():
    boxes = np.array([[100, 100, 200, 200], [90, 80, 230, 220], [120, 110, 160, 150]], dtype=np.float32)
    kept, scores = weighted_nms(boxes, np.array([0.9, 0.7, 0.6], dtype=np.float32))  # IoU 0.51 and 0.16
    assert len(kept) == 1 and scores[0] == pytest.approx(0.9)


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.9, 0.6, 0.8], dtype=np.float32)
    kept, kept_scores = weighted_nms(boxes, scores)
    assert len(kept) == 2 and list(kept_scores) == pytest.approx([0.9, 0.8])
    np.testing.assert_allclose(kept[0], [0.4, 0.4, 10.4, 10.4], rtol=1e-5)  # score-weighted mean of the pair
    np.testing.assert_allclose(kept[1], [50, 50, 60, 60])


def test_finds_the_face_in_a_portrait_and_none_in_a_landscape(detector):
    image = load_image(portrait())  # 512 x 600, face around (265, 240)
    (face,) = detector.detect(image)
    x, y = centre(face.box)
    assert 220 < x < 310 and 190 < y < 290 and 150 < face.box[2] < 260 and face.score > 0.8
    assert detector.detect(load_image(no_face_photo())) == []
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)) == []
    assert detector.detect(np.full((240, 320, 3), 200, dtype=np.uint8)) == []


def test_frame_face_reproduces_the_training_framing_and_pads_at_edges():
    image = np.arange(400 * 500 * 3, dtype=np.uint32).reshape(400, 500, 3).astype(np.uint8)
    framed = frame_face(image, (200, 150, 100, 100))
    side = round(FACE_FRAMING_SIDE * 100)
    assert framed.shape == (side, side, 3)
    top, left = round(200 - 11 - side / 2), round(250 - side / 2)  # centred 0.11 widths above the box centre
    np.testing.assert_array_equal(framed, image[top : top + side, left : left + side])
    corner = frame_face(image, (0, 0, 60, 60))  # mostly outside: edge pixels repeat, nothing fails
    assert corner.shape == (143, 143, 3)
    np.testing.assert_array_equal(corner[0, 0], image[0, 0])


def test_frame_face_scale_sets_the_square_side_and_pads_a_tight_crop():
    image = np.arange(105 * 80 * 3, dtype=np.uint32).reshape(105, 80, 3).astype(np.uint8)  # a CelebA-like crop
    framed = frame_face(image, (-8, 4, 96, 96), scale=1.5)  # the face box is wider than the photo
    assert framed.shape == (144, 144, 3)
    left = -8 + 48 - 72  # -32: 32 columns of padding repeat the photo's left edge
    np.testing.assert_array_equal(framed[:, 31], framed[:, 0])
    np.testing.assert_array_equal(framed[72, 32:112], image[round(4 + 48 - 0.11 * 96 - 72) + 72, :])
    assert left == -32 and frame_face(image, (-8, 4, 96, 96)).shape[0] == round(FACE_FRAMING_SIDE * 96)


def test_a_model_frames_faces_at_its_own_face_scale(tmp_path, detector):
    import dataclasses

    from facegender.runtime.inference import Classifier

    photo = load_image(portrait())
    model = Classifier.load()
    model.info = dataclasses.replace(model.info, face_crops=True, face_scale=1.5)
    size, crop = model.info.image_size, model.info.crop
    (tight,) = face_inputs(photo, size, crop, detector, "auto", face_crops=True, face_scale=1.5)
    (wide,) = face_inputs(photo, size, crop, detector, "auto", face_crops=True, face_scale=2.38)
    assert not np.array_equal(tight.image, wide.image)
    np.testing.assert_array_equal(model.photo_input(photo), tight.image)  # evaluate and the robustness suite
    (face,) = next(iter(model.predict_faces([portrait()], detect="auto")))[1]  # predict and serve
    assert face[1] == pytest.approx(float(model.predict(tight.image[None])[0]), abs=1e-6)


def paste_two(face_a: Image.Image, face_b: Image.Image, canvas: tuple[int, int], at: list[tuple[int, int]]) -> Image:
    picture = Image.new("RGB", canvas, (110, 120, 105))
    picture.paste(face_a, at[0])
    picture.paste(face_b, at[1])
    return picture


def assert_two_faces_in_place(rows: list[dict], regions: list[tuple[int, int, int, int]]) -> None:
    assert [r["face_index"] for r in rows] == [0, 1], rows
    for row, (x0, y0, x1, y1) in zip(rows, regions, strict=True):  # left to right
        x, y = centre(row["box"])
        assert x0 < x < x1 and y0 < y < y1, (row["box"], (x0, y0, x1, y1))
        assert row["label"] in ("female", "male") and 0 <= row["p_male"] <= 1


def test_two_portraits_on_one_canvas_give_two_results_in_place(tmp_path):
    face = Image.open(portrait()).resize((256, 300))
    path = tmp_path / "pair.jpg"
    paste_two(face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (1100, 520), [(40, 150), (760, 60)]).save(path)
    code, rows, stderr = run_predict(str(path))
    assert code == 0, stderr
    assert_two_faces_in_place(rows, [(40, 150, 296, 450), (760, 60, 1016, 360)])


@requires_shared(LFW)
def test_two_shared_faces_side_by_side(tmp_path):
    a = Image.open(LFW / "val" / "male" / sorted(os.listdir(LFW / "val" / "male"))[0])
    b = Image.open(LFW / "val" / "female" / sorted(os.listdir(LFW / "val" / "female"))[0])
    path = tmp_path / "pair.png"
    paste_two(a, b, (800, 420), [(30, 100), (520, 40)]).save(path)
    code, rows, stderr = run_predict(str(path), "--detect", "on")
    central = [r for r in rows if r["box"][2] > 60]  # LFW photos can hold parts of other people at their edges
    assert code == 0, stderr
    assert_two_faces_in_place(central, [(90, 160, 220, 290), (580, 100, 710, 230)])  # the middle of each photo


def test_no_face_photo_gives_one_no_face_row(tmp_path):
    code, rows, stderr = run_predict(str(no_face_photo()))
    assert code == 0, stderr  # not an error: an answer
    assert rows == [{"file": str(no_face_photo()), "face_index": None, "box": None, "face_score": None,
                     "label": "no_face", "p_male": None, "threshold": bundled_threshold(), "error": None}]  # fmt: skip
    code, rows, _ = run_predict(str(no_face_photo()), "--no-detect")  # taken as a face crop: a label
    assert rows[0]["label"] in ("female", "male") and rows[0]["box"] == [0, 0, 640, 427]


def test_exif_rotated_photo_boxes_the_upright_face(tmp_path, detector):
    upright = Image.open(portrait())
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the pixels are stored turned a quarter to the left
    upright.transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif, quality=95)
    code, rows, stderr = run_predict(str(rotated), "--annotate", str(tmp_path / "drawn"))
    assert code == 0, stderr
    (row,) = rows
    (expected,) = detector.detect(np.asarray(upright.convert("RGB")), crop_first=True)  # as --detect auto
    assert np.abs(np.subtract(row["box"], expected.box)).max() <= 6
    drawn = Image.open(tmp_path / "drawn" / "rotated.jpg")
    assert drawn.size == upright.size  # drawn on the upright photo


def test_annotate_draws_boxes_and_never_overwrites_inputs(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(portrait()).save(photos / "portrait.png")
    Image.open(no_face_photo()).save(photos / "temple.png")
    code, rows, stderr = run_predict(str(photos), "--annotate", str(tmp_path / "out"))
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["portrait.png", "temple.png"]
    original = np.asarray(Image.open(photos / "portrait.png").convert("RGB")).astype(int)
    drawn = np.asarray(Image.open(tmp_path / "out" / "portrait.png").convert("RGB")).astype(int)
    x, y, _, h = next(r["box"] for r in rows if r["file"].endswith("portrait.png"))
    assert np.abs(drawn[y + h // 2, x] - original[y + h // 2, x]).sum() > 60  # the box's left edge is drawn
    np.testing.assert_array_equal(drawn[-5:, -5:], original[-5:, -5:])  # away from the box: the photo itself
    before = (photos / "portrait.png").read_bytes()
    code, _, stderr = run_predict(str(photos), "--annotate", str(photos))
    assert code == 2 and "overwritten" in stderr and "Traceback" not in stderr
    assert (photos / "portrait.png").read_bytes() == before


def test_auto_classifies_a_face_crop_on_the_whole_photo_as_trained(tmp_path, detector, brightness_model):
    """For a model trained on whole photos (no face_crops), a photo that is already a face crop is read whole."""
    image = load_image(portrait())
    (face,) = detector.detect(image)
    crop = tmp_path / "crop.png"
    Image.fromarray(frame_face(image, face.box)).save(crop)  # framed like LFW's training photos
    model = str(brightness_model())  # p(male) = the input's mean brightness: whole photo and face differ
    _, auto, _ = run_predict(str(crop), "--model", model)
    _, off, _ = run_predict(str(crop), "--no-detect", "--model", model)
    _, framed, _ = run_predict(str(crop), "--detect", "on", "--model", model)
    (a,), (o,), (f,) = auto, off, framed
    assert a["p_male"] == o["p_male"] != f["p_male"] and a["box"] != o["box"]  # the whole photo; the box: the face
    _, on, _ = run_predict(str(crop), "--detect", "on")
    assert len(on) == 1 and np.abs(np.subtract(on[0]["box"], a["box"])).max() <= 0.1 * a["box"][2]


def test_abstain_band_and_csv_and_table_carry_the_box(tmp_path):
    code, rows, _ = run_predict(str(portrait()), "--abstain-band", "0.0,1.0")
    assert code == 0 and rows[0]["label"] == "uncertain" and rows[0]["p_male"] is not None
    result = subprocess.run([sys.executable, "-m", "facegender", "predict", str(portrait()), "--format", "csv"],
                            capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
    header, line = result.stdout.strip().splitlines()
    assert header == "file,face_index,box,face_score,label,p_male,threshold,error"
    assert line.split(",")[1] == "0" and len(line.split(",")[2].split()) == 4


def test_training_face_crops_use_the_prediction_framing(tmp_path, detector):
    face = Image.open(portrait()).resize((256, 300))
    path = tmp_path / "scene.png"
    paste_two(face, Image.new("RGB", (10, 10)), (900, 500), [(500, 120), (0, 0)]).save(path)
    images, kept, errors = load_images([path], 96, 0.85, face_crops=True)
    (expected,) = face_inputs(load_image(path), 96, 0.85, detector, "auto", face_crops=True)
    assert kept == [0] and not errors
    np.testing.assert_array_equal(images[0], expected.image)
    assert not np.array_equal(images[0], prepare(load_image(path), 96, 0.85))  # not the whole scene
    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 120), (90, 90, 90)).save(blank)  # no face: the whole photo, as before
    images, _, _ = load_images([blank], 96, 0.85, face_crops=True)
    np.testing.assert_array_equal(images[0], prepare(load_image(blank), 96, 0.85))


def test_bad_detect_arguments_are_usage_errors():
    for args in (["--detect", "maybe"], ["--min-face-score", "1.5"]):
        result = subprocess.run([sys.executable, "-m", "facegender", "predict", str(portrait()), *args],
                                capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def test_detector_files_are_packaged():
    files = {p.name for p in (Path(__file__).parents[1] / "src" / "facegender" / "models" / "detector").iterdir()}
    assert {"blazeface_short_range.onnx", "blazeface_full_range.onnx", "README.md"} <= files


def test_a_face_crops_model_reads_labelled_photos_as_it_was_trained(tmp_path, detector):
    import dataclasses

    from facegender.cli import build_parser
    from facegender.runtime.inference import Classifier

    face = Image.open(portrait()).resize((256, 300))
    scene = tmp_path / "scene.png"
    paste_two(face, Image.new("RGB", (10, 10)), (900, 500), [(560, 150), (0, 0)]).save(scene)
    plain = Classifier.load()
    plain.info = dataclasses.replace(plain.info, face_crops=False)  # a model trained on whole photos
    framed = Classifier.load()  # the bundled model frames faces
    assert framed.info.face_crops is True
    size, crop, scale = plain.info.image_size, plain.info.crop, framed.info.face_scale
    (_, p_plain), (_, p_framed) = [*plain.predict_files([scene]), *framed.predict_files([scene])]
    (face_input,) = face_inputs(load_image(scene), size, crop, detector, "auto", True, face_scale=scale)
    assert p_framed == pytest.approx(float(framed.predict(face_input.image[None])[0]), abs=1e-6)
    assert p_plain == pytest.approx(float(plain.predict(prepare(load_image(scene), size, crop)[None])[0]), abs=1e-6)
    np.testing.assert_array_equal(framed.photo_input(load_image(scene)), face_input.image)  # robustness suite too
    args = build_parser().parse_args(["train", "--data", "d", "--face-crops"])
    assert args.face_crops is True and build_parser().parse_args(["train", "--data", "d"]).face_crops is None


def test_crop_first_stops_at_a_face_crop_and_searches_other_photos_fully(tmp_path, detector):
    image = load_image(portrait())
    (face,) = detector.detect(image)
    crop = frame_face(image, face.box)
    (quick,) = detector.detect(crop, crop_first=True)
    (full,) = [f for f in detector.detect(crop) if abs(centre(f.box)[0] - crop.shape[1] / 2) < 40]
    assert np.abs(np.subtract(quick.box, full.box)).max() <= 0.1 * full.box[2]
    scene = np.asarray(paste_two(Image.fromarray(image).resize((256, 300)), Image.new("RGB", (9, 9)),
                                 (1000, 500), [(40, 100), (0, 0)]))  # fmt: skip
    found = detector.detect(scene)
    assert len(found) == 1 and detector.detect(scene, crop_first=True) == found  # not a crop: the full search


def test_boxes_map_back_through_the_letterbox_on_tall_and_wide_photos(detector):
    face = Image.open(portrait()).resize((256, 300))
    (alone,) = detector.detect(np.asarray(face))
    for canvas, at in (((256, 900), (0, 560)), ((1000, 300), (700, 0)), ((1000, 300), (0, 0))):
        picture = Image.new("RGB", canvas, (110, 120, 105))
        picture.paste(face, at)
        (found,) = detector.detect(np.asarray(picture))  # the face is smaller in the network's input here
        x, y = centre(alone.box)
        offset = np.subtract(centre(found.box), (x + at[0], y + at[1]))
        assert np.abs(offset).max() <= 0.2 * alone.box[2], (canvas, found.box, alone.box)  # padding (~350 px) undone
        assert 0.85 < found.box[2] / alone.box[2] < 1.15, (canvas, found.box, alone.box)  # scale undone


def test_a_face_cut_by_the_edge_keeps_its_whole_extent_for_framing(detector):
    image = load_image(portrait())
    shifted = np.ascontiguousarray(image[:, 230:])  # the face's left third is cut off
    (face,) = detector.detect(shifted)
    assert face.box[0] == 0 and face.extent[0] < 0 and face.extent[2] > face.box[2] and not face.inside
    assert frame_face(shifted, face.extent).shape[0] == round(FACE_FRAMING_SIDE * face.extent[2])


def test_two_people_near_the_centre_are_two_faces_not_a_crop(tmp_path):
    face = Image.open(portrait()).resize((200, 234))
    path = tmp_path / "couple.png"
    paste_two(face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (560, 420), [(90, 90), (270, 90)]).save(path)
    code, rows, stderr = run_predict(str(path))  # --detect auto
    assert code == 0, stderr
    assert_two_faces_in_place(rows, [(90, 90, 290, 324), (270, 90, 470, 324)])


def test_odd_photos_give_answers_not_tracebacks(tmp_path):
    photos = tmp_path / "odd"
    photos.mkdir()
    Image.new("RGB", (1, 1), (200, 100, 50)).save(photos / "dot.png")
    Image.new("RGB", (5000, 3), (90, 90, 90)).save(photos / "strip.png")
    Image.open(portrait()).convert("L").save(photos / "grey.png")
    Image.open(portrait()).convert("RGBA").save(photos / "alpha.png")
    code, rows, stderr = run_predict(str(photos), "--annotate", str(tmp_path / "drawn"))
    assert code == 0 and "Traceback" not in stderr, stderr
    labels = {Path(r["file"]).name: r["label"] for r in rows}
    assert labels["dot.png"] == labels["strip.png"] == "no_face"
    assert labels["grey.png"] in ("female", "male") and labels["alpha.png"] in ("female", "male")


def test_annotate_never_replaces_a_file_already_in_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "grace_hopper.jpg").write_bytes(b"mine")
    code, _, stderr = run_predict(str(portrait()), "--annotate", str(out))
    assert code == 0, stderr
    assert (out / "grace_hopper.jpg").read_bytes() == b"mine"
    assert Image.open(out / "grace_hopper-2.jpg").size == (512, 600)


def test_a_faint_face_is_found_on_the_second_look(detector):
    image = load_image(portrait()).astype(float)
    faint = (image * 0.02 + 200 * 0.98).astype(np.uint8)  # thick fog: 2 % of the contrast left
    assert detector._search(Image.fromarray(faint), crop_first=False) == []  # the first look misses it
    (face,) = detector.detect(faint)
    (clear,) = detector.detect(image.astype(np.uint8))
    assert np.abs(np.subtract(face.box, clear.box)).max() <= 0.1 * clear.box[2]


def test_train_with_face_crops_end_to_end(tmp_path):
    pytest.importorskip("keras")
    face = Image.open(portrait()).resize((128, 150))
    for split, count in (("train", 4), ("val", 2)):
        for label in ("female", "male"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(count):  # the face somewhere in a larger scene: framing must find it
                picture = face if label == "female" else face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                paste_two(picture, Image.new("RGB", (4, 4)), (420, 300), [(20 + 60 * i, 40 + 20 * i), (0, 0)]).save(
                    folder / f"{label}{i}.png"
                )
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"image_size": 64, "crop": 0.85, "head_epochs": 1, "epochs": 1, "cached_views": 2,
                                  "backbone_weights": "none", "batch_size": 4}))  # fmt: skip
    run = tmp_path / "run"
    command = [sys.executable, "-m", "facegender", "train", "--data", str(tmp_path / "data" / "train"), "--val",
               str(tmp_path / "data" / "val"), "--config", str(config), "--face-crops", "--out", str(run)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((run / "model.json").read_text())
    assert meta["face_crops"] is True and meta["config"]["face_crops"] is True
    code, rows, stderr = run_predict(str(tmp_path / "data" / "val" / "male"), "--model", str(run))
    assert code == 0 and len(rows) == 2 and all(r["label"] in ("female", "male") for r in rows), stderr


def test_small_faces_in_a_large_photo_are_found_in_tiles(detector):
    face = Image.open(portrait()).resize((128, 150))  # a face about 50 px wide: 2.5 % of the photo's width
    picture = Image.new("RGB", (2000, 1300), (110, 120, 105))
    for x, y in ((300, 200), (1500, 900)):
        picture.paste(face, (x, y))
    assert len(detector._search(Image.fromarray(np.asarray(picture)).resize((500, 325)), False)) == 0  # too small
    faces = sorted(detector.detect(np.asarray(picture)), key=lambda f: f.box[0])
    assert len(faces) == 2, faces
    for found, (x, y) in zip(faces, ((300, 200), (1500, 900)), strict=True):
        cx, cy = centre(found.box)
        assert x < cx < x + 128 and y < cy < y + 150 and 35 <= found.box[2] <= 70


def test_evaluate_counts_the_photos_without_a_face_and_scores_them_whole(tmp_path, brightness_model):
    """The shared framing's one fallback: a labelled photo with no face found is scored on the whole photo, and
    evaluate says how many and which (predict answers no_face for them)."""
    import json

    data = tmp_path / "data"
    for label in ("female", "male"):
        (data / label).mkdir(parents=True)
    Image.open(portrait()).save(data / "female" / "hopper.jpg")
    grey_photo(data / "male" / "grey.png", 192, (200, 160))  # nothing like a face: p(male) = 192 / 256 whole
    model = brightness_model(face_crops=True, face_scale=1.5)
    out = tmp_path / "ev"
    result = cli("evaluate", "--data", str(data), "--model", str(model), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "no face found in 1 photo(s)" in result.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["no_face"]["count"] == 1 and m["no_face"]["files"] == ["male/grey.png"]
    assert m["per_class"]["male"]["recall"] == 1.0  # scored whole: 0.75 >= 0.5
    plain = cli("evaluate", "--data", str(data), "--model", str(brightness_model()), "--out", str(tmp_path / "e2"))
    assert plain.returncode == 0, plain.stderr
    assert "no_face" not in json.loads((tmp_path / "e2" / "metrics.json").read_text())  # no detector, no count
