"""`predict --annotate`: the caption states the label and the confidence in that label, boxes are drawn where the
faces are and nowhere else, and copies are written whole, beside the photos but never over them."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegender.runtime.annotate import COLOURS, Annotator, caption

GREY = 128


def face(
    label: str = "female",
    p_male: float = 0.1,
    box: tuple[int, int, int, int] = (40, 70, 60, 50),
    face_score: float | None = 0.9,
) -> dict:
    """One predict row for a face."""
    return {"label": label, "p_male": p_male, "box": list(box), "face_score": face_score}


def grey(width: int = 200, height: int = 160) -> np.ndarray:
    return np.full((height, width, 3), GREY, np.uint8)


def drawn(tmp_path: Path, image: np.ndarray, rows: list[dict], name: str = "photo.png") -> np.ndarray:
    """The annotated copy of `image` as pixels (a .png source gives a lossless .png copy)."""
    return np.asarray(Image.open(Annotator(tmp_path / "out").write(tmp_path / name, image, rows)).convert("RGB"))


@pytest.mark.parametrize("p_male", [0.0, 0.02, 0.3, 0.49, 0.51, 0.7, 0.98, 1.0])
def test_the_caption_states_the_confidence_in_its_own_label(p_male):
    label = "male" if p_male >= 0.5 else "female"
    text = caption({"label": label, "p_male": p_male, "face_score": None})
    sure = p_male if label == "male" else 1 - p_male
    assert text == f"{label} {round(100 * sure)}%"
    assert int(re.fullmatch(r"\w+ (\d+)%", text)[1]) >= 50  # a label is never shown with under half its confidence


def test_a_female_caption_never_shows_p_male():
    assert caption({"label": "female", "p_male": 0.02, "face_score": None}) == "female 98%"  # not "female 0.02"
    assert caption({"label": "male", "p_male": 0.81, "face_score": None}) == "male 81%"


def test_the_caption_of_an_uncertain_face_gives_p_male_and_the_face_score_when_known():
    assert caption({"label": "uncertain", "p_male": 0.48, "face_score": None}) == "uncertain p(male) 0.48"
    assert caption({"label": "uncertain", "p_male": 0.48, "face_score": 0.9}) == "uncertain p(male) 0.48  face 0.90"
    assert caption({"label": "female", "p_male": 0.25, "face_score": 0.876}) == "female 75%  face 0.88"
    assert caption({"label": "male", "p_male": 0.75}) == "male 75%"  # a row without the column


def test_the_box_is_drawn_on_its_outline_and_nothing_else_changes_but_its_caption(tmp_path):
    image = grey()
    x, y, w, h = 40, 70, 60, 50
    out = drawn(tmp_path, image, [face(box=(x, y, w, h))])
    assert out.shape == image.shape
    changed = (out != image).any(axis=2)
    line = 2  # the outline's width on a photo this small
    outline = np.zeros_like(changed)
    outline[y : y + h, x : x + w] = True
    outline[y + line : y + h - line, x + line : x + w - line] = False
    colour = COLOURS["female"]
    assert (out[outline] == colour).all()  # the whole outline, in the label's colour
    assert not changed[y + line : y + h - line, x + line : x + w - line].any()  # the face itself is untouched
    caption_band = np.zeros_like(changed)
    caption_band[:y, max(0, x - 2) :] = True  # the caption sits above the box, from its left edge
    assert not (changed & ~outline & ~caption_band).any()
    written = out[:y][changed[:y]]
    assert len(written) > 200  # a caption is there: white text on the label's colour
    assert (written == colour).all(axis=1).any() and (written == 255).all(axis=1).any()


@pytest.mark.parametrize("label", ["male", "female", "uncertain"])
def test_each_label_is_drawn_in_its_colour(tmp_path, label):
    out = drawn(tmp_path, grey(), [face(label=label, p_male=0.5)])
    assert tuple(out[95, 40]) == COLOURS[label]  # the box's left edge, half way down


def test_each_face_of_a_photo_gets_its_own_box(tmp_path):
    out = drawn(tmp_path, grey(), [face("male", 0.9, (10, 60, 40, 40)), face("female", 0.2, (120, 80, 50, 50))])
    assert tuple(out[80, 10]) == COLOURS["male"] and tuple(out[105, 120]) == COLOURS["female"]


def test_the_caption_drawn_is_the_caption_of_the_row(tmp_path):
    first = drawn(tmp_path, grey(), [face(p_male=0.02)])
    same_caption = drawn(tmp_path, grey(), [face(p_male=0.0201)])  # still "female 98%"
    other_caption = drawn(tmp_path, grey(), [face(p_male=0.1)])  # "female 90%"
    assert np.array_equal(first, same_caption)
    differs = (first != other_caption).any(axis=2)
    assert differs.any() and not differs[70:].any()  # only above the box, where the caption is


@pytest.mark.parametrize("label", ["no_face", "error"])
def test_a_photo_without_a_face_gets_a_caption_in_its_corner_and_no_box(tmp_path, label):
    row = {"label": label, "p_male": None, "box": None, "face_score": None}
    out = drawn(tmp_path, grey(), [row])
    changed = (out != grey()).any(axis=2)
    rows, columns = np.nonzero(changed)
    assert changed.sum() > 100 and rows.max() < 40 and columns.min() < 5  # at the top left
    assert (out[changed] == COLOURS["no_face"]).all(axis=1).any()


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((3, 2), (0, 0, 3, 2)),  # a photo of a few pixels, the whole of it the face
        ((1, 1), (0, 0, 1, 1)),
        ((40, 30), (-10, -8, 30, 25)),  # a face cut by the top left corner
        ((40, 30), (25, 20, 50, 50)),  # ... by the bottom right
        ((40, 30), (-5, 5, 60, 10)),  # wider than the photo
        ((40, 30), (10, 10, 0, 0)),  # a degenerate box (zero width and height) still gets its mark
        ((40, 30), (10, 10, 0, 12)),
    ],
)
def test_odd_sizes_and_boxes_partly_outside_the_photo_are_drawn(tmp_path, size, box):
    image = np.full((size[1], size[0], 3), 60, np.uint8)
    out = drawn(tmp_path, image, [face(box=box)])
    assert out.shape == image.shape and (out != image).any()


def test_jpeg_stays_jpeg_and_other_formats_become_png(tmp_path):
    annotator = Annotator(tmp_path / "out")
    for name, kind in (("a.jpg", "JPEG"), ("b.JPEG", "JPEG"), ("c.png", "PNG"), ("d.webp", "PNG"), ("e.bmp", "PNG")):
        path = annotator.write(tmp_path / name, grey(), [face()])
        assert path.parent == tmp_path / "out" and Image.open(path).format == kind
        assert path.name == (name if kind == "JPEG" else f"{Path(name).stem}.png")


def test_the_input_photo_is_never_overwritten(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(grey()).save(photo)
    before = photo.read_bytes()
    written = Annotator(tmp_path).write(photo, grey(), [face()])  # annotating into the photos' own folder
    assert written == tmp_path / "photo-2.png" and photo.read_bytes() == before


def test_names_already_taken_are_never_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "face.jpg").write_bytes(b"someone else's file")
    annotator = Annotator(out)
    sources = ["a/face.jpg", "b/face.jpg", "c/Photo.png", "d/PHOTO.png"]  # the last two: one name to some systems
    paths = [annotator.write(tmp_path / source, grey(), [face()]) for source in sources]
    assert [p.name for p in paths] == ["face-2.jpg", "face-3.jpg", "Photo.png", "PHOTO-2.png"]
    assert (out / "face.jpg").read_bytes() == b"someone else's file"
    assert len(list(out.iterdir())) == 5


def test_a_write_that_fails_leaves_no_file_behind(tmp_path, monkeypatch):
    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space"):
        Annotator(out).write(tmp_path / "photo.png", grey(), [face()])
    assert list(out.iterdir()) == []  # neither half a copy under its name nor a temporary file
    monkeypatch.undo()
    assert Annotator(out).write(tmp_path / "photo.png", grey(), [face()]) == out / "photo.png"
