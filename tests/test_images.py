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
