"""Face or not: detector recall on face photos against false positives on photos without a face, per rule.

    python benchmarks/face_or_not.py --out runs/face_or_not            # the shared val sets beside the project
    python benchmarks/face_or_not.py --out runs/face_or_not --data DIR [DIR ...] --per-condition 60 --severity 3

Positives: every photo of each labelled folder (default: ../shared/data/{lfw-adverse,celeba-gender,utkface}/val),
its clean photos also made adverse by the robustness suite's conditions (facegender.evaluation.corrupt, one severity, a
seeded sample of --per-condition clean photos per condition), plus the package photos that hold a face
(scikit-image's astronaut and camera, matplotlib's grace_hopper). A positive counts as found when at least one
face is accepted anywhere in it: what decides between a label and `no_face` in `facegender predict`.
Negatives: every photo without a face that ships inside scikit-image, scikit-learn and matplotlib (the *_NEGATIVES
lists below; nothing is copied into the repository), and synthetic ones made here with a fixed seed (noise, gradients,
gratings, text, coloured shapes, crops and rotations of the package photos). A negative is a false positive
when any face is accepted in it.

The detectors (as before issue 20, and with detect.ZOOM_OUTS) run once per photo at the lowest --thresholds value,
on the first look and on each second look measured (the contrast stretches and the blur); every rule is then applied
to those candidates as FaceDetector.detect applies it (a face the rule rejects is not found, and a photo left without
a face gets the rule's second looks). Writes into --out: candidates.json (reused with --reuse), results.json,
results.md and face_or_not.png.
Needs scikit-image and matplotlib (`pip install -e ".[eval,bench]"`).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = ("lfw-adverse", "celeba-gender", "utkface")

# Every photo without a face shipped inside these packages (skimage.data's bundled files, scikit-learn's
# load_sample_image, matplotlib's mpl-data/sample_data). Left out: skimage's lfw_subset (200 faces of 25 px),
# no_time_for_that_tiny.gif (a person, 25x14 px) and multipage.tif (10x15 px); the data sets that skimage.data
# downloads on first use; matplotlib's non-image samples (CSV, .npz arrays, .dat) except the MRI slice s1045.ima.
SKIMAGE_NEGATIVES = ("brick", "cell", "chelsea", "checkerboard", "clock", "coffee", "coins", "colorwheel", "grass",
                     "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon",
                     "page", "retina", "rocket", "shepp_logan_phantom", "text", "stereo_motorcycle")  # fmt: skip
SKLEARN_NEGATIVES = ("china.jpg", "flower.jpg")
MATPLOTLIB_NEGATIVES = ("Minduka_Present_Blue_Pack.png", "logo2.png", "s1045.ima.gz")
PACKAGE_FACES = (("skimage", "astronaut"), ("skimage", "camera"), ("matplotlib", "grace_hopper.jpg"))


def rgb(array: np.ndarray) -> np.ndarray:
    """Any package image as RGB uint8: grey repeated, alpha dropped (over white), floats and 16-bit rescaled."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        low, high = np.nanmin(array), np.nanmax(array)
        array = ((array - low) / max(high - low, 1e-12) * 255).round().astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float64) / 255
        array = (array[:, :, :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(array[:, :, :3])


def package_image(package: str, name: str) -> list[tuple[str, np.ndarray]]:
    """(name, RGB image) for one package photo (stereo_motorcycle gives two)."""
    if package == "skimage":
        import skimage.data

        loaded = getattr(skimage.data, name)()
        if name == "stereo_motorcycle":
            return [("skimage motorcycle_left", rgb(loaded[0])), ("skimage motorcycle_right", rgb(loaded[1]))]
        return [(f"skimage {name}", rgb(loaded))]
    if package == "sklearn":
        from sklearn.datasets import load_sample_image

        return [(f"sklearn {name}", rgb(load_sample_image(name)))]
    from matplotlib import cbook

    path = cbook.get_sample_data(name, asfileobj=False)
    if name == "s1045.ima.gz":  # a 256x256 16-bit MRI slice, raw
        with gzip.open(path) as handle:
            return [(f"matplotlib {name}", rgb(np.frombuffer(handle.read(), np.uint16).reshape(256, 256)))]
    return [(f"matplotlib {name}", rgb(np.asarray(Image.open(path))))]


def package_negatives() -> list[tuple[str, np.ndarray]]:
    names = [("skimage", n) for n in SKIMAGE_NEGATIVES] + [("sklearn", n) for n in SKLEARN_NEGATIVES]
    names += [("matplotlib", n) for n in MATPLOTLIB_NEGATIVES]
    return [item for package, name in names for item in package_image(package, name)]


def synthetic_negatives(bases: list[np.ndarray], per_kind: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """Generated photos without a face, `per_kind` of each kind, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jumbo kites".split()

    def size() -> tuple[int, int]:
        return int(rng.integers(160, 700)), int(rng.integers(160, 700))

    def colour() -> tuple[int, int, int]:
        return tuple(int(c) for c in rng.integers(0, 256, 3))

    def font(points: int) -> ImageFont.ImageFont:
        try:
            return ImageFont.truetype("DejaVuSans.ttf", points)
        except OSError:  # no DejaVu on this system: Pillow's own font
            return ImageFont.load_default(size=points)

    for i in range(per_kind):
        w, h = size()
        yield f"noise uniform {i}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        w, h = size()
        sigma = rng.uniform(8, 60)
        yield f"noise gaussian {i}", np.clip(rng.normal(128, sigma, (h, w, 3)), 0, 255).astype(np.uint8)
        w, h = size()  # smooth noise: blobs of colour at a random scale
        coarse = rng.integers(0, 256, (int(rng.integers(2, 12)), int(rng.integers(2, 12)), 3), dtype=np.uint8)
        yield f"noise smooth {i}", np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC))
        w, h = size()
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        if rng.random() < 0.5:
            angle = rng.uniform(0, np.pi)
            t = (xs * np.cos(angle) + ys * np.sin(angle)) / (w + h)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            t = np.hypot(xs - cx, ys - cy) / np.hypot(w, h)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
        a, b = np.array(colour(), float), np.array(colour(), float)
        yield f"gradient {i}", (a + (b - a) * t[:, :, None]).astype(np.uint8)
        w, h = size()
        period, angle = rng.uniform(6, 80), rng.uniform(0, np.pi)
        wave = np.sin(2 * np.pi * (xs[:h, :w] * np.cos(angle) + ys[:h, :w] * np.sin(angle)) / period)
        if rng.random() < 0.5:  # a checkerboard-like product of two gratings
            wave = wave * np.sin(2 * np.pi * (xs[:h, :w] * np.sin(angle) - ys[:h, :w] * np.cos(angle)) / period)
        a, b = np.array(colour(), float), np.array(colour(), float)
        yield f"grating {i}", (a + (b - a) * ((wave[:, :, None] + 1) / 2)).astype(np.uint8)
        w, h = size()
        picture = Image.new("RGB", (w, h), colour())
        draw = ImageDraw.Draw(picture)
        for _ in range(int(rng.integers(1, 12))):
            text = " ".join(rng.choice(words, int(rng.integers(1, 5))))
            xy = (int(rng.integers(-20, w)), int(rng.integers(-10, h)))
            draw.text(xy, text, fill=colour(), font=font(int(rng.integers(10, 90))))
        yield f"text {i}", np.asarray(picture)
        w, h = size()
        picture = Image.new("RGB", (w, h), colour())
        draw = ImageDraw.Draw(picture)
        for _ in range(int(rng.integers(1, 15))):
            x0, y0 = int(rng.integers(-50, w)), int(rng.integers(-50, h))
            box = (x0, y0, x0 + int(rng.integers(10, w // 2 + 20)), y0 + int(rng.integers(10, h // 2 + 20)))
            shape = rng.choice(["ellipse", "rectangle", "polygon"])
            if shape == "polygon":
                points = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(int(rng.integers(3, 7)))]
                draw.polygon(points, fill=colour())
            else:
                getattr(draw, shape)(box, fill=colour(), outline=colour(), width=int(rng.integers(0, 6)))
        yield f"shapes {i}", np.asarray(picture)
        base = bases[int(rng.integers(len(bases)))]
        bh, bw = base.shape[:2]
        side = int(rng.uniform(0.2, 0.7) * min(bh, bw))
        x, y = int(rng.integers(0, bw - side + 1)), int(rng.integers(0, bh - side + 1))
        crop = Image.fromarray(base[y : y + side, x : x + side])
        yield f"crop {i}", np.asarray(crop.resize((int(rng.integers(128, 400)),) * 2, Image.Resampling.BILINEAR))
        base = Image.fromarray(bases[int(rng.integers(len(bases)))])
        angle = float(rng.choice([90, 180, 270, rng.uniform(10, 350)]))
        yield f"rotation {i}", np.asarray(base.rotate(angle, expand=True, fillcolor=colour()))


def positives(folders: list[Path], per_condition: int, severity: int, seed: int) -> Iterator[tuple[dict, np.ndarray]]:
    """({set, condition, file}, RGB image) for every photo of each folder and its corrupted clean photos."""
    import albumentations as A

    from facegender.evaluation.corrupt import CONDITIONS, corruption
    from facegender.faces.images import load_image

    rng = np.random.default_rng(seed)
    for folder in folders:
        rows = list(csv.DictReader((folder / "labels.csv").open(encoding="utf-8")))
        clean = []
        for row in rows:
            condition = (row.get("condition") or "clean").lower()
            image = load_image(folder / row["file"])
            yield {"set": folder.parent.name, "condition": condition, "file": row["file"]}, image
            if condition == "clean":
                clean.append(row["file"])
        for index, name in enumerate(CONDITIONS):
            chosen = rng.choice(len(clean), min(per_condition, len(clean)), replace=False)
            transform = A.Compose([corruption(name, severity)], seed=seed * 1000 + index * 10 + severity)
            for i in sorted(chosen):
                image = transform(image=load_image(folder / clean[i]))["image"]
                yield {"set": folder.parent.name, "condition": f"{name} {severity}", "file": clean[i]}, image


def second_looks() -> dict[str, Callable[[Image.Image], Image.Image]]:
    """Every second look measured: the contrast stretches (before issue 20) and the blur, by name."""
    from facegender.faces import detect

    return {"stretch_contrast": detect._stretch_contrast, "equalize": detect._equalize, "smooth": detect._smooth}


def candidates(detectors: dict, image: np.ndarray) -> dict[str, dict[str, list[dict]]]:
    """Per detector: the faces of the first look and of each second look, at its min_score."""
    picture = Image.fromarray(image)
    looks_measured = second_looks()
    found = {}
    for name, detector in detectors.items():
        looks = {"first": detector._search(picture, False)}
        for look, enhance in looks_measured.items():
            looks[look] = detector._second_look(picture, False, enhance)
        found[name] = {look: [face_dict(face) for face in faces] for look, faces in looks.items()}
    return found


def face_dict(face) -> dict:
    return {"box": face.box, "score": face.score, "extent": face.extent, "keypoints": face.keypoints}


def as_face(data: dict):
    from facegender.faces.detect import Face

    return Face(tuple(data["box"]), data["score"], tuple(data["extent"]), tuple(map(tuple, data["keypoints"])))


def collect(args: argparse.Namespace) -> dict:
    """Run the detector once over every positive and negative; the candidates of each photo."""
    from facegender.faces.detect import FaceDetector

    low = min(args.thresholds)
    raw = {"threads": 1, "check_keypoints": False}  # every candidate: the rules check keypoints themselves
    detectors = {"zoom-out": FaceDetector(low, **raw), "plain": FaceDetector(low, zoom_outs=(), **raw)}
    shipped = FaceDetector(threads=1)  # the defaults, as predict and serve run them
    started, seconds, photos = time.time(), 0.0, 0
    out: dict[str, list] = {"positives": [], "package_faces": [], "package_negatives": [], "synthetic_negatives": []}

    def run(image: np.ndarray) -> dict:
        nonlocal seconds, photos
        start = time.perf_counter()
        found = candidates(detectors, image)
        seconds += time.perf_counter() - start
        photos += 1
        found["shipped"] = [face_dict(face) for face in shipped.detect(image, crop_first=True)]  # as --detect auto
        return found

    for package, name in PACKAGE_FACES:
        for label, image in package_image(package, name):
            out["package_faces"].append({"name": label, "size": image.shape[1::-1], **run(image)})
    bases = []
    for label, image in package_negatives():
        bases.append(image)
        out["package_negatives"].append({"name": label, "size": image.shape[1::-1], **run(image)})
    for label, image in synthetic_negatives(bases, args.synthetic_per_kind, args.seed):
        out["synthetic_negatives"].append({"name": label, "size": image.shape[1::-1], **run(image)})
    for info, image in positives(args.data, args.per_condition, args.severity, args.seed):
        out["positives"].append({**info, "size": image.shape[1::-1], **run(image)})
    out["meta"] = {"min_score": low, "photos": photos, "ms_per_photo_all_looks": 1000 * seconds / photos,
                   "wall_s": round(time.time() - started, 1), "severity": args.severity,
                   "per_condition": args.per_condition, "seed": args.seed, "machine": platform.machine()}  # fmt: skip
    return out


# A rule: (name, detector, accept(face, threshold) -> bool, the second looks a photo left without a face gets, and
# the margin their faces need above the threshold). Detectors: "plain" as before issue 20 (the whole photo and
# tiles), "zoom-out" also searching the photo shrunk (detect.ZOOM_OUTS).
Rule = tuple[str, str, Callable[..., bool], tuple[str, ...], float]
CONTRAST = ("stretch_contrast", "equalize")
SHIPPED = "shipped defaults: FaceDetector().detect"


def rules() -> list[Rule]:
    from facegender.faces.detect import SECOND_LOOK_MARGIN, plausible_face

    def score(face, t: float) -> bool:
        return face.score >= t

    def keypoints(face, t: float) -> bool:
        return face.score >= t and plausible_face(face)

    margin = SECOND_LOOK_MARGIN
    return [
        ("plain, contrast looks (before issue 20)", "plain", score, CONTRAST, 0.0),
        ("plain, no second look", "plain", score, (), 0.0),
        ("zoom-out, no second look", "zoom-out", score, (), 0.0),
        ("zoom-out, contrast looks", "zoom-out", score, CONTRAST, 0.0),
        ("zoom-out, contrast + smooth looks", "zoom-out", score, (*CONTRAST, "smooth"), 0.0),
        (f"zoom-out, contrast + smooth looks at +{margin}", "zoom-out", score, (*CONTRAST, "smooth"), margin),
        (f"zoom-out + keypoints, contrast + smooth looks at +{margin}", "zoom-out", keypoints, (*CONTRAST, "smooth"),
         margin),
    ]  # fmt: skip


def accepted(photo: dict, rule: Rule, threshold: float) -> bool:
    _, detector, accept, looks, margin = rule
    if any(accept(as_face(face), threshold) for face in photo[detector]["first"]):
        return True
    return any(accept(as_face(face), threshold + margin) for look in looks for face in photo[detector][look])


def score(found: dict, thresholds: list[float]) -> list[dict]:
    """Recall per set and condition and false positives per negative kind, for every rule and threshold."""
    from facegender.faces.detect import MIN_SCORE

    results = []
    runs = [(rule[0], t, lambda p, rule=rule, t=t: accepted(p, rule, t)) for rule in rules() for t in thresholds]
    runs.append((SHIPPED, MIN_SCORE, lambda p: bool(p["shipped"])))
    for name, t, hits in runs:
        hit = {key: [hits(p) for p in photos] for key, photos in found.items() if key != "meta"}
        recall: dict[str, dict[str, list[int]]] = {}
        for photo, ok in zip(found["positives"], hit["positives"], strict=True):
            by = recall.setdefault(photo["set"], {})
            for key in {photo["condition"], "clean" if photo["condition"] == "clean" else "degraded"}:
                by.setdefault(key, [0, 0])
                by[key][0] += ok
                by[key][1] += 1
        kinds: dict[str, list[int]] = {}
        for photo, ok in zip(found["synthetic_negatives"], hit["synthetic_negatives"], strict=True):
            kind = photo["name"].rsplit(" ", 1)[0].split(" ")[0]
            kinds.setdefault(kind, [0, 0])
            kinds[kind][0] += ok
            kinds[kind][1] += 1
        results.append({
            "rule": name, "threshold": t,
            "recall": {s: {c: round(k / n, 4) for c, (k, n) in by.items()} for s, by in recall.items()},
            "counts": {s: {c: n for c, (_, n) in by.items()} for s, by in recall.items()},
            "package_faces_found": [p["name"] for p, ok in zip(found["package_faces"], hit["package_faces"],
                                                                strict=True) if ok],
            "package_false_positives": [p["name"] for p, ok in zip(found["package_negatives"],
                                                                   hit["package_negatives"], strict=True) if ok],
            "package_negatives": len(found["package_negatives"]),
            "synthetic_false_positives": sum(hit["synthetic_negatives"]),
            "synthetic_negatives": len(found["synthetic_negatives"]),
            "synthetic_by_kind": {k: f"{fp}/{n}" for k, (fp, n) in sorted(kinds.items())},
        })  # fmt: skip
    return results


def markdown(results: list[dict], meta: dict) -> str:
    sets = list(results[0]["recall"])
    lines = [f"Detector candidates at min_score {meta['min_score']}, severity {meta['severity']}, "
             f"{meta['per_condition']} clean photos per condition per set, seed {meta['seed']}; "
             f"{meta['photos']} photos, {meta['ms_per_photo_all_looks']:.1f} ms each for all looks "
             f"(1 thread, {meta['machine']}).", ""]  # fmt: skip
    head = " | ".join(f"{s} clean | {s} degraded" for s in sets)
    lines += [f"| rule | threshold | {head} | package faces | package FP | synthetic FP |",
              "|---|---|" + "---|---|" * len(sets) + "---|---|---|"]  # fmt: skip
    for r in results:
        cells = " | ".join(f"{r['recall'][s]['clean']:.3f} | {r['recall'][s]['degraded']:.3f}" for s in sets)
        fp = r["package_false_positives"]
        synthetic = f"{r['synthetic_false_positives']}/{r['synthetic_negatives']}"
        share = r["synthetic_false_positives"] / r["synthetic_negatives"]
        lines.append(f"| {r['rule']} | {r['threshold']:.2f} | {cells} | {len(r['package_faces_found'])}/3 | "
                     f"{len(fp)}/{r['package_negatives']} | {synthetic} ({share:.1%}) |")  # fmt: skip
    lines += ["", "False positives among the package photos:", ""]
    for r in results:
        lines.append(f"- {r['rule']}, {r['threshold']:.2f}: {', '.join(r['package_false_positives']) or 'none'}")
    conditions = sorted({c for s in sets for c in results[0]["recall"][s]} - {"clean", "degraded"})
    lines += ["", "Recall per condition (rule and threshold as in the rows):", ""]
    lines += [f"| rule | threshold | set | {' | '.join(conditions)} |", "|---|---|---|" + "---|" * len(conditions)]
    for r in results:
        for s in sets:
            cells = " | ".join(f"{r['recall'][s][c]:.3f}" if c in r["recall"][s] else "" for c in conditions)
            lines.append(f"| {r['rule']} | {r['threshold']:.2f} | {s} | {cells} |")
    lines += ["", "Synthetic false positives per kind:", ""]
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in r["synthetic_by_kind"].items())
        lines.append(f"- {r['rule']}, {r['threshold']:.2f}: {kinds}")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 6))
    for name in dict.fromkeys(r["rule"] for r in results):
        rs = [r for r in results if r["rule"] == name]
        t = [r["threshold"] for r in rs]
        worst_degraded = [min(r["recall"][s]["degraded"] for s in r["recall"]) for r in rs]
        style = {"marker": "*", "markersize": 14} if name == SHIPPED else {"marker": "o"}
        (line,) = left.plot(t, worst_degraded, label=f"{name}: degraded (worst set)", **style)
        worst_clean = [min(r["recall"][s]["clean"] for s in r["recall"]) for r in rs]
        left.plot(t, worst_clean, linestyle="--", color=line.get_color(), label=f"{name}: clean", **style)
        package = [len(r["package_false_positives"]) / r["package_negatives"] for r in rs]
        synthetic = [r["synthetic_false_positives"] / r["synthetic_negatives"] for r in rs]
        right.plot(t, package, color=line.get_color(), label=f"{name}: package photos", **style)
        right.plot(t, synthetic, linestyle="--", color=line.get_color(), label=f"{name}: synthetic", **style)
    left.axhline(0.99, color="grey", linewidth=0.8)
    left.axhline(0.97, color="grey", linewidth=0.8, linestyle=":")
    right.axhline(0.01, color="grey", linewidth=0.8)
    left.set(xlabel="detector score threshold", ylabel="photos with a face found", title="Recall on face photos")
    right.set(xlabel="detector score threshold", ylabel="photos with a face accepted", title="False positives")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", type=Path, default=[SHARED / s / "val" for s in SETS])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8])
    parser.add_argument("--severity", type=int, default=2, choices=(1, 2, 3), help="of the corruptions (default 2)")
    parser.add_argument("--per-condition", type=int, default=100, help="clean photos per set and condition")
    parser.add_argument("--synthetic-per-kind", type=int, default=60, help="synthetic negatives of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="score the candidates.json already in --out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "candidates.json"
    if args.reuse:
        found = json.loads(cache.read_text())
    else:
        found = collect(args)
        cache.write_text(json.dumps(found))
    thresholds = sorted(t for t in args.thresholds if t >= found["meta"]["min_score"])
    results = score(found, thresholds)
    (args.out / "results.json").write_text(json.dumps({"meta": found["meta"], "results": results}, indent=2))
    table = markdown(results, found["meta"])
    (args.out / "results.md").write_text(table)
    plot(results, args.out / "face_or_not.png")
    print(table)


if __name__ == "__main__":
    main()
