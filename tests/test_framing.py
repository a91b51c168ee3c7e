"""images.frame_face on faces too big for the classifier's input: the square is scaled down before padding, and
comes out as the full-size framing would after `prepare`."""

from __future__ import annotations

import numpy as np
import pytest

from facegender.faces.images import FACE_FRAMING_RAISE, FACE_FRAMING_SIDE, frame_face, prepare

WIDTH, HEIGHT = 1000, 800


def gradient() -> np.ndarray:
    """Red = x / 4, green = y / 4, blue 100: a pixel's colour says where it came from, to a quarter pixel."""
    x = np.arange(WIDTH) / 4
    y = np.arange(HEIGHT) / 4
    image = np.empty((HEIGHT, WIDTH, 3), np.float64)
    image[..., 0] = x[None, :]
    image[..., 1] = y[:, None]
    image[..., 2] = 100
    return np.round(image).astype(np.uint8)


def by_hand(box: tuple[int, int, int, int], out: int) -> np.ndarray:
    """The colours of the framing square (2.38 box widths, 0.11 widths above the centre) sampled at `out` x `out`
    pixel centres, positions outside the photo taken from its nearest edge."""
    x, y, w, h = box
    side = round(FACE_FRAMING_SIDE * w)
    left, top = x + w / 2 - side / 2, y + h / 2 - FACE_FRAMING_RAISE * w - side / 2
    centres = (np.arange(out) + 0.5) * side / out - 0.5
    columns = np.clip(left + centres, 0, WIDTH - 1) / 4
    rows = np.clip(top + centres, 0, HEIGHT - 1) / 4
    expected = np.empty((out, out, 3))
    expected[..., 0] = columns[None, :]
    expected[..., 1] = rows[:, None]
    expected[..., 2] = 100
    return expected


# a 300 px face near the top-left corner (the square starts 187 px left of the photo and 210 px above it)
# and one near the bottom-right corner: a 714 px square, over 4x a 40 px input, scaled down to 160
@pytest.mark.parametrize("box", [(20, 30, 300, 300), (700, 550, 300, 300)])
def test_a_big_face_is_scaled_down_with_its_padding(box):
    image = gradient()
    framed = frame_face(image, box, max_side=160)
    assert framed.shape == (160, 160, 3) and framed.dtype == np.uint8
    # one output pixel is 4.5 photo pixels (1.1 colour steps here): the padding is rounded to whole pixels
    np.testing.assert_allclose(framed, by_hand(box, 160), atol=1.5)


@pytest.mark.parametrize("box", [(20, 30, 300, 300), (700, 550, 300, 300), (350, 250, 300, 300)])
def test_scaled_down_framing_gives_the_classifier_the_same_input(box):
    image = gradient()
    full = frame_face(image, box)
    assert full.shape == (714, 714, 3)
    small = frame_face(image, box, max_side=4 * 40)  # as detect.face_inputs frames for a 40 px model
    np.testing.assert_allclose(prepare(small, 40).astype(int), prepare(full, 40).astype(int), atol=2)


def test_a_face_that_fits_is_not_resized():
    image = gradient()
    framed = frame_face(image, (400, 300, 60, 60), max_side=160)  # a 143 px square: under max_side
    assert framed.shape == (143, 143, 3)
    np.testing.assert_array_equal(framed, frame_face(image, (400, 300, 60, 60)))


def nearest_inside(image: np.ndarray, box: tuple[int, int, int, int], scale: float = FACE_FRAMING_SIDE) -> np.ndarray:
    """The framing square at full size, each position outside the photo taken from the nearest pixel inside."""
    x, y, w, h = box
    side = max(1, round(scale * w))
    left, top = round(x + w / 2 - side / 2), round(y + h / 2 - FACE_FRAMING_RAISE * w - side / 2)
    rows = np.clip(top + np.arange(side), 0, image.shape[0] - 1)
    columns = np.clip(left + np.arange(side), 0, image.shape[1] - 1)
    return image[rows][:, columns]


# inside; over each edge; over two corners; wholly outside on each side and beyond a corner
BOXES = [(20, 15, 10, 10), (-6, 15, 10, 12), (34, 15, 10, 8), (20, -7, 10, 10), (20, 25, 10, 10), (-8, -8, 12, 12),
         (33, 24, 12, 12), (-40, 10, 10, 10), (60, 10, 10, 10), (15, -40, 10, 10), (15, 50, 10, 10), (70, 60, 8, 8),
         (-30, -30, 5, 5)]  # fmt: skip


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("scale", [FACE_FRAMING_SIDE, 1.0, 1.5])
def test_framing_repeats_the_nearest_pixel_beyond_the_photo(box, scale):
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)  # every pixel its own colour
    framed = frame_face(image, box, scale=scale)
    np.testing.assert_array_equal(framed, nearest_inside(image, box, scale))


def test_a_degenerate_box_still_frames_one_pixel():
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    framed = frame_face(image, (5, 6, 0, 0))
    assert framed.shape == (1, 1, 3)
    np.testing.assert_array_equal(framed, nearest_inside(image, (5, 6, 0, 0)))


@pytest.mark.parametrize(
    ("shape", "box", "max_side"),
    [
        ((12, 12), (4, 5, 2, 2), 2),
        ((HEIGHT, WIDTH), (400, 300, 100, 100), 64),
        ((HEIGHT, WIDTH), (500, 200, 120, 80), 64),
    ],
)
def test_inside_the_photo_scaling_down_is_a_bilinear_resize_of_the_full_square(shape, box, max_side):
    from PIL import Image

    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    full = frame_face(image, box)
    expected = np.asarray(Image.fromarray(full).resize((max_side, max_side), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(frame_face(image, box, max_side=max_side), expected)


@pytest.mark.parametrize("box", [(-60, -9, 22, 22), (-10, 20, 20, 20), (-57, 700, 22, 22), (990, -40, 30, 30),
                                 (1200, 900, 40, 40), (-300, 300, 50, 50), (500, -300, 50, 50)])  # fmt: skip
@pytest.mark.parametrize("max_side", [23, 31])
def test_a_scaled_down_square_over_the_edge_keeps_its_size_and_colours(box, max_side):
    framed = frame_face(gradient(), box, max_side=max_side)
    assert framed.shape == (max_side, max_side, 3)
    np.testing.assert_allclose(framed, by_hand(box, max_side), atol=1.5)


@pytest.mark.parametrize(("box", "edge"), [((-300, 300, 50, 50), "left"), ((500, -300, 50, 50), "top")])
def test_a_scaled_down_square_wholly_outside_the_photo_repeats_only_the_nearest_edge(box, edge):
    image = np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    if edge == "left":
        image[:, 0] = (10, 20, 30)
    else:
        image[0, :] = (10, 20, 30)
    framed = frame_face(image, box, max_side=31)  # 119 px, scaled down: the next column or row must not mix in
    assert framed.shape == (31, 31, 3) and (framed == (10, 20, 30)).all()
