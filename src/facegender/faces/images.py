"""Reading images and making the classifier's input. Pillow and NumPy only (no TensorFlow).

The same `prepare` is used by training, evaluation and prediction, so there is no train/serve skew.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facegender.errors import ImageError

# Refuse images above this many pixels before decoding them (decompression bombs); 50 MP covers cameras.
MAX_PIXELS = 50_000_000


def decode_image(data: bytes, name: str = "upload") -> np.ndarray:
    """Decode image bytes (e.g. an upload) exactly as load_image decodes a file; ImageError names `name`."""
    import io

    return _decode(io.BytesIO(data), name)


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file into an RGB uint8 array of shape (H, W, 3).

    EXIF orientation is applied; palette, grayscale, CMYK, 16-bit and alpha images are converted
    (alpha is composited on white). Raises ImageError naming the file when it cannot be read.
    """
    return _decode(Path(path), path)


def _open_regular(path: Path) -> BinaryIO:
    """Open a file for reading, refusing a FIFO, device or socket (one swapped in after a folder scan too).

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer that may never come.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(mode):
            raise ImageError(str(path), "not a regular file (a FIFO, device or socket); name an image file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _decode(source: Path | BinaryIO, path: str) -> np.ndarray:
    try:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(source, Path):
                source = stack.enter_context(_open_regular(source))
            with Image.open(source) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise ImageError(
                        path,
                        f"image is {image.width}x{image.height} pixels, over the {MAX_PIXELS:,} pixel "
                        "limit; resize it first",
                    )
                image.seek(0)  # first frame of animated images
                image = ImageOps.exif_transpose(image)
                return _to_rgb(image)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder, not an image") from None
    except PermissionError:
        if os.path.isdir(path):  # a folder that could not be listed (data.iter_image_files)
            raise ImageError(path, "folder cannot be read (permission denied); make it readable") from None
        raise ImageError(path, "permission denied; make the file readable") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image Pillow can read (empty, corrupt or another format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(path, f"image is too large ({exc}); resize it first") from None
    except (OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            raise ImageError(path, "is a symlink loop (the link leads back to itself); fix or remove it") from None
        raise ImageError(path, f"could not decode image ({exc}); the file may be truncated") from None
    except Exception as exc:  # a Pillow plugin's own error on a damaged file (DDS: NotImplementedError, ...)
        raise ImageError(
            path, f"could not decode image ({type(exc).__name__}: {exc}); the file may be damaged"
        ) from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits by the image's own range before converting.
        array = np.asarray(image, dtype=np.float64)
        top = max(float(array.max()), 1.0)
        array = np.clip(array / (65535.0 if top > 255 else 255.0) * 255.0, 0, 255).astype(np.uint8)
        return np.stack([array] * 3, axis=-1)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"unexpected decoded shape {rgb.shape}")
    return rgb


def center_crop(image: np.ndarray, fraction: float) -> np.ndarray:
    """The centred square whose side is `fraction` of the image's shorter side."""
    height, width = image.shape[:2]
    side = max(1, round(min(height, width) * fraction))
    top = (height - side) // 2
    left = (width - side) // 2
    return image[top : top + side, left : left + side]


def prepare(image: np.ndarray, size: int, crop: float = 1.0) -> np.ndarray:
    """The classifier's input: centred crop, then a bilinear resize to size x size (uint8 RGB)."""
    square = center_crop(image, crop)
    if square.shape[0] == size and square.shape[1] == size:
        return np.ascontiguousarray(square)
    resized = Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


# How the training photos frame a face: LFW-style photos are about 2.38 BlazeFace box widths wide, centred
# 0.11 box widths above the box's centre (medians over the LFW-adverse train and val photos, measured by
# benchmarks/detector.py). frame_face reproduces that framing around a face found in any photo.
FACE_FRAMING_SIDE = 2.38
FACE_FRAMING_RAISE = 0.11


def frame_face(
    image: np.ndarray, box: tuple[int, int, int, int], max_side: int | None = None, scale: float = FACE_FRAMING_SIDE
) -> np.ndarray:
    """The square `scale` box widths wide around a face box (x, y, width, height), centred a little above it.

    Parts of the square outside the image are filled by repeating the edge pixels. With max_side, a larger
    square is scaled down to that side (bilinear, as `prepare` resizes) before the padding, so a close-up in
    a large photo never makes a large array. `prepare` then makes the classifier's input from the square
    exactly as from a training photo.
    """
    height, width = image.shape[:2]
    x, y, w, h = box
    side = max(1, round(scale * w))
    left = round(x + w / 2 - side / 2)
    top = round(y + h / 2 - FACE_FRAMING_RAISE * w - side / 2)
    # the part of the square inside the image (at least one pixel, the nearest, when it lies outside)
    x0, y0 = min(max(0, left), width - 1), min(max(0, top), height - 1)
    x1, y1 = max(min(width, left + side), x0 + 1), max(min(height, top + side), y0 + 1)
    part = image[y0:y1, x0:x1]
    pad_top, pad_left = y0 - top, x0 - left
    out = side
    if max_side is not None and side > max_side:
        shrink = max_side / side
        new_w, new_h = max(1, round(part.shape[1] * shrink)), max(1, round(part.shape[0] * shrink))
        part = np.asarray(Image.fromarray(part).resize((new_w, new_h), Image.Resampling.BILINEAR))
        pad_top, pad_left, out = round(pad_top * shrink), round(pad_left * shrink), max_side
    pad_top, pad_left = min(max(0, pad_top), out - 1), min(max(0, pad_left), out - 1)
    part = part[: out - pad_top, : out - pad_left]
    pads = ((pad_top, out - pad_top - part.shape[0]), (pad_left, out - pad_left - part.shape[1]), (0, 0))
    return np.pad(part, pads, mode="edge")


def load_prepared(path: str | Path, size: int, crop: float = 1.0) -> np.ndarray:
    """load_image followed by prepare."""
    return prepare(load_image(path), size, crop)
