import io

import numpy as np
import pytest
from PIL import Image

from facegender.errors import ImageError
from facegender.faces.images import center_crop, load_image, prepare


def save(image: Image.Image, path, **kw):
    image.save(path, **kw)
    return path


def test_exif_rotation_is_applied(tmp_path):
    wide = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = save(wide, tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(path).shape == (40, 20, 3)


@pytest.mark.parametrize(
    ("mode", "color"),
    [("L", 128), ("P", 3), ("RGBA", (10, 20, 30, 0)), ("LA", (50, 255)), ("I;16", 65535), ("CMYK", (0, 0, 0, 0))],
)
def test_every_mode_becomes_rgb_uint8(tmp_path, mode, color):
    image = Image.new(mode, (16, 12), color)
    ext = ".jpg" if mode == "CMYK" else ".png"
    rgb = load_image(save(image, tmp_path / f"x{ext}"))
    assert rgb.shape == (12, 16, 3) and rgb.dtype == np.uint8
    if mode == "RGBA":  # fully transparent pixels composite onto white
        assert rgb[0, 0].tolist() == [255, 255, 255]
    if mode == "I;16":
        assert rgb[0, 0].tolist() == [255, 255, 255]


def test_unreadable_files_raise_image_error_naming_the_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    html = tmp_path / "page.jpg"
    html.write_text("<html>not an image</html>")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, "JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buffer.getvalue()[:200])
    for path in (empty, html, truncated, tmp_path / "missing.jpg", tmp_path):
        with pytest.raises(ImageError) as info:
            load_image(path)
        assert str(path) in str(info.value)


def test_center_crop_and_prepare():
    image = np.arange(100 * 60 * 3, dtype=np.uint8).reshape(100, 60, 3)
    crop = center_crop(image, 0.5)
    assert crop.shape == (30, 30, 3)
    assert (crop == image[35:65, 15:45]).all()
    out = prepare(image, 32, 1.0)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("P", (20, 10), i) for i in (0, 1, 2)]
    for i, frame in enumerate(frames):
        frame.putpalette([i * 100, 0, 0] * 256)
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    rgb = load_image(path)
    assert rgb.shape == (10, 20, 3) and rgb[0, 0, 0] == 0


def png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def reason(path) -> str:
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert info.value.path == str(path)
    return info.value.reason


def test_each_unreadable_file_says_why(tmp_path):
    import os

    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    os.mkfifo(tmp_path / "fifo.jpg")  # opening it must not wait for a writer
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:200])
    assert reason(tmp_path / "missing.jpg") == "file not found"
    assert reason(tmp_path) == "is a folder, not an image"
    assert reason(tmp_path / "empty.jpg") == "not an image Pillow can read (empty, corrupt or another format)"
    assert reason(tmp_path / "loop.jpg") == "is a symlink loop (the link leads back to itself); fix or remove it"
    assert reason(tmp_path / "fifo.jpg") == "not a regular file (a FIFO, device or socket); name an image file"
    cut = reason(tmp_path / "cut.jpg")
    assert cut.startswith("could not decode image (") and cut.endswith("); the file may be truncated"), cut
    assert "loop" not in cut


def test_permission_denied_on_a_file_and_on_a_folder(tmp_path, monkeypatch):
    import errno

    from facegender.faces import images

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(images, "_open_regular", refuse)  # as for a user without read access (tests run as root)
    (tmp_path / "a.png").write_bytes(b"x")
    assert reason(tmp_path / "a.png") == "permission denied; make the file readable"
    assert reason(tmp_path) == "folder cannot be read (permission denied); make it readable"


def test_any_other_failure_while_decoding_is_named_with_its_type(tmp_path, monkeypatch):
    from facegender.faces import images

    def broken(image):
        raise NotImplementedError("no decoder for this kind")

    monkeypatch.setattr(images, "_to_rgb", broken)
    path = save(Image.new("RGB", (4, 4)), tmp_path / "a.png")
    expected = "could not decode image (NotImplementedError: no decoder for this kind); the file may be damaged"
    assert reason(path) == expected


def test_our_pixel_limit_and_pillows_decompression_bomb_check(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from facegender.faces import images

    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    assert load_image(save(Image.new("RGB", (40, 25)), tmp_path / "limit.png")).shape == (25, 40, 3)  # 1000: fine
    over = save(Image.new("RGB", (40, 30)), tmp_path / "over.png")
    assert reason(over) == "image is 40x30 pixels, over the 1,000 pixel limit; resize it first"
    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    for limit in (1000, 500):  # Pillow warns above its limit (an error here) and refuses above twice it
        monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", limit)
        text = reason(over)
        assert text.startswith("image is too large (Image size (1200 pixels) exceeds limit of ") and text.endswith(
            "pixels, could be decompression bomb DOS attack.); resize it first"), text  # fmt: skip


def test_a_photo_that_makes_pillow_warn_still_loads(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), (10, 20, 30)).save(buffer, "PNG")
    data = buffer.getvalue()
    end_of_header = 8 + 25  # signature, then IHDR (length, type, 13 bytes, CRC)
    actl = png_chunk(b"acTL", bytes(8))  # an animation of 0 frames: Pillow warns "Invalid APNG" and reads the PNG
    path = tmp_path / "odd.png"
    path.write_bytes(data[:end_of_header] + actl + data[end_of_header:])
    with pytest.warns(UserWarning, match="Invalid APNG"):  # a warning, shown as such: not an unreadable photo
        assert load_image(path)[0, 0].tolist() == [10, 20, 30]


def test_decode_image_names_the_upload():
    buffer = io.BytesIO()
    Image.new("RGB", (5, 3), (7, 8, 9)).save(buffer, "PNG")
    from facegender.faces.images import decode_image

    assert decode_image(buffer.getvalue()).tolist() == [[[7, 8, 9]] * 5] * 3
    with pytest.raises(ImageError) as info:
        decode_image(b"junk")
    assert info.value.path == "upload"
    with pytest.raises(ImageError) as info:
        decode_image(b"junk", "face.png")
    assert info.value.path == "face.png"


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I"])
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 100, 255], [0, 100, 255]),  # up to 255: already 8-bit values
        ([0, 256, 32768, 65535], [0, 0, 127, 255]),  # over 255: scaled from 16 bits (256 -> 0.996 -> 0)
        ([0, 128, 256], [0, 0, 0]),
    ],
)
def test_16_and_32_bit_greys_scale_by_their_own_range(mode, values, expected):
    from facegender.faces.images import _to_rgb

    image = Image.new(mode, (len(values), 1))
    image.putdata(values)
    rgb = _to_rgb(image)
    assert rgb.dtype == np.uint8 and rgb[0, :, 0].tolist() == expected and (rgb == rgb[..., :1]).all()


def test_32_bit_values_outside_16_bits_are_clipped():
    from facegender.faces.images import _to_rgb

    image = Image.new("I", (4, 1))
    image.putdata([-65535, -5, 0, 100_000])
    assert _to_rgb(image)[0, :, 0].tolist() == [0, 0, 0, 255]


@pytest.mark.parametrize("mode", ["P", "PA", "LA", "RGBA"])
def test_transparent_pixels_of_every_alpha_mode_are_white(mode):
    from facegender.faces.images import _to_rgb

    if mode in ("P", "PA"):
        image = Image.new(mode, (2, 1))
        image.putpalette([200, 0, 0, 0, 0, 200] + [0] * 762)
        image.putdata([0, 1] if mode == "P" else [(0, 0), (1, 255)])
        if mode == "P":
            image.info["transparency"] = 0  # palette entry 0 is transparent
    else:
        image = Image.new(mode, (2, 1))
        image.putdata([(40, 0), (40, 255)] if mode == "LA" else [(200, 0, 0, 0), (0, 0, 200, 255)])
    rgb = _to_rgb(image)
    assert rgb[0, 0].tolist() == [255, 255, 255], mode
    assert rgb[0, 1].tolist() == ([40, 40, 40] if mode == "LA" else [0, 0, 200]), mode


@pytest.mark.parametrize("size", [(0, 5), (5, 0)])
def test_an_empty_decoded_image_is_refused(size):
    from facegender.faces.images import _to_rgb

    with pytest.raises(ValueError) as info:
        _to_rgb(Image.new("RGB", size))
    assert str(info.value) == f"unexpected decoded shape {(size[1], size[0], 3)}"
    assert _to_rgb(Image.new("RGB", (1, 1), (1, 2, 3))).tolist() == [[[1, 2, 3]]]


def test_center_crop_rounds_and_keeps_at_least_one_pixel():
    image = np.arange(100 * 61 * 3).reshape(100, 61, 3)
    crop = center_crop(image, 0.5)  # side round(30.5) = 30, left (61 - 30) // 2 = 15
    assert crop.shape == (30, 30, 3) and (crop == image[35:65, 15:45]).all()
    assert center_crop(np.zeros((3, 3, 3)), 0.1).shape == (1, 1, 3)


def test_prepare_is_a_bilinear_resize_of_the_centred_crop(tmp_path):
    from facegender.faces.images import load_prepared

    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(image[5:45, 15:55]).resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(prepare(image, 16, 0.8), expected)
    np.testing.assert_array_equal(prepare(image, 16), prepare(image, 16, 1.0))
    np.testing.assert_array_equal(prepare(image, 50), image[:, 10:60])  # already that size: not resampled
    path = save(Image.fromarray(image), tmp_path / "a.png")
    np.testing.assert_array_equal(load_prepared(path, 16, 0.8), expected)
    np.testing.assert_array_equal(load_prepared(str(path), 16), prepare(image, 16))
