"""runtime/rows.py: the rows `predict` and the web service report, written out in full."""

from __future__ import annotations

import os

import pytest

from facegender.errors import InvalidOption
from facegender.runtime.rows import FIELDS, error_row, face_rows, no_face_row, parse_band, result_row

STRANGE = os.fsdecode(b"in\nbox/caf\xe9.jpg")  # a newline and a byte that is not UTF-8: shown on one line
SHOWN = "in\\nbox/caf\\xe9.jpg"


def test_error_and_no_face_rows_in_full():
    assert error_row(STRANGE, "not an image", 0.4) == {
        "file": SHOWN, "face_index": None, "box": None, "face_score": None, "label": "error", "p_male": None,
        "threshold": 0.4, "error": "not an image"}  # fmt: skip
    assert no_face_row(STRANGE, 0.6) == {
        "file": SHOWN, "face_index": None, "box": None, "face_score": None, "label": "no_face", "p_male": None,
        "threshold": 0.6, "error": None}  # fmt: skip
    assert error_row("a.png", "gone")["threshold"] is None and no_face_row("a.png")["threshold"] is None
    assert tuple(error_row("a.png", "x")) == FIELDS and tuple(no_face_row("a.png")) == FIELDS


def test_a_result_row_in_full():
    row = result_row(STRANGE, 0.123456789, 0.5, box=(3, 4, 50, 60), face_index=2, face_score=0.987654321)
    assert row == {
        "file": SHOWN, "face_index": 2, "box": [3, 4, 50, 60], "face_score": 0.9877, "label": "female",
        "p_male": 0.123457, "threshold": 0.5, "error": None}  # fmt: skip
    assert tuple(row) == FIELDS
    assert result_row("a.png", 0.9, 0.5) == {
        "file": "a.png", "face_index": 0, "box": None, "face_score": None, "label": "male", "p_male": 0.9,
        "threshold": 0.5, "error": None}  # fmt: skip


@pytest.mark.parametrize(
    ("p_male", "label"),
    [(0.3, "female"), (0.35, "female"), (0.36, "uncertain"), (0.5, "uncertain"), (0.64, "uncertain"),
     (0.65, "male"), (0.9, "male")],
)  # fmt: skip
def test_the_threshold_is_inclusive_and_the_abstain_band_open(p_male, label):
    assert result_row("a.png", p_male, 0.5, (0.35, 0.65))["label"] == label
    assert result_row("a.png", p_male, 0.5)["label"] == ("male" if p_male >= 0.5 else "female")
    assert result_row("a.png", p_male, 0.5, (0.35, 0.65))["p_male"] == p_male  # kept inside the band too


def test_face_rows_are_left_to_right_then_top_to_bottom():
    faces = [((50, 9, 10, 10), 0.8, 0.91), ((5, 30, 10, 10), 0.2, 0.92), ((5, 8, 10, 10), 0.5, 0.93)]
    rows = face_rows(STRANGE, faces, 0.6, (0.45, 0.55))
    assert [(r["face_index"], r["box"], r["p_male"], r["face_score"], r["label"]) for r in rows] == [
        (0, [5, 8, 10, 10], 0.5, 0.93, "uncertain"),
        (1, [5, 30, 10, 10], 0.2, 0.92, "female"),
        (2, [50, 9, 10, 10], 0.8, 0.91, "male"),
    ]
    assert {r["file"] for r in rows} == {SHOWN} and {r["threshold"] for r in rows} == {0.6}
    same_column = [((5, 30, 10, 10), 0.2, None), ((5, 8, 99, 1), 0.5, None)]  # the taller box is lower
    assert [r["box"] for r in face_rows("a.png", same_column, 0.5)] == [[5, 8, 99, 1], [5, 30, 10, 10]]
    same_corner = [((5, 8, 20, 20), 0.1, None), ((5, 8, 10, 10), 0.2, None)]  # a tie keeps the detector's order
    assert [r["box"] for r in face_rows("a.png", same_corner, 0.5)] == [[5, 8, 20, 20], [5, 8, 10, 10]]
    assert face_rows(STRANGE, [], 0.7) == [no_face_row(STRANGE, 0.7)]


@pytest.mark.parametrize(("text", "band"), [(None, None), ("0.35,0.65", (0.35, 0.65)), ("0,1", (0.0, 1.0))])
def test_parse_band(text, band):
    assert parse_band(text) == band


@pytest.mark.parametrize(
    ("text", "requirement"),
    [
        ("0.4", "takes LOW,HIGH such as 0.35,0.65"),
        ("0.4;0.6", "takes LOW,HIGH such as 0.35,0.65"),
        ("0.1,0.2,0.3", "takes LOW,HIGH such as 0.35,0.65"),
        ("a,b", "takes LOW,HIGH such as 0.35,0.65"),
        ("0.6,0.4", "needs 0 <= LOW < HIGH <= 1"),
        ("0.5,0.5", "needs 0 <= LOW < HIGH <= 1"),
        ("-0.1,0.5", "needs 0 <= LOW < HIGH <= 1"),
        ("0.5,1.01", "needs 0 <= LOW < HIGH <= 1"),
        ("1,1.5", "needs 0 <= LOW < HIGH <= 1"),
    ],
)
def test_parse_band_refuses_with_the_parameter_named(text, requirement):
    with pytest.raises(InvalidOption) as info:
        parse_band(text)
    assert (info.value.name, info.value.requirement, info.value.value) == ("abstain_band", requirement, text)
    assert str(info.value) == f"abstain_band {requirement}, got {text!r}"
