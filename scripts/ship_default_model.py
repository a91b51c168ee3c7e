"""Ship a trained run as the bundled default model: copy its ONNX file into the package and write the model card.

    python scripts/ship_default_model.py runs/default-ship --eval runs/default-ship-eval

`--eval` is the output folder of `facegender evaluate --data ../shared/data/lfw-adverse/val --model RUN --corrupt`
(its metrics.json, with the robustness suite); the card quotes those numbers as measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "src" / "facegender" / "models" / "default"
MAX_MB = 15


def condition_table(slices: dict) -> str:
    rows = ["| condition | n | accuracy | macro-F1 | female recall | male recall |", "|---|---|---|---|---|---|"]
    for value, s in sorted(slices.get("condition", {}).items()):
        r = s.get("recall", {})
        rows.append(
            f"| {value} | {s['n']} | {s['accuracy']:.3f} | {s['macro_f1']:.3f} | "
            f"{(r.get('female') or 0):.3f} | {(r.get('male') or 0):.3f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder written by facegender train")
    parser.add_argument("--eval", required=True, help="facegender evaluate --corrupt output folder for val")
    args = parser.parse_args()
    run, evaluation = Path(args.run), Path(args.eval)
    meta = json.loads((run / "model.json").read_text())
    result = json.loads((evaluation / "metrics.json").read_text())
    size_mb = (run / "model.onnx").stat().st_size / 2**20
    if size_mb > MAX_MB:
        raise SystemExit(f"model.onnx is {size_mb:.1f} MB, over the {MAX_MB} MB budget")
    TARGET.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "model.onnx", TARGET / "model.onnx")

    from facegender.corrupt import robustness_table

    training = meta["training"]
    pc = result["per_class"]
    cal = result["calibration"]
    data = ", ".join(Path(d).name + "/" for d in training.get("data", []))
    card = f"""# facegender default model

`model.onnx` ({size_mb:.1f} MB): MobileNetV2 (ImageNet weights, fine-tuned) with a GAP → Dense(128) →
Dropout → sigmoid head, exported to ONNX. Input: one RGB photo; the centred square keeping
{meta["crop"]:.0%} of the shorter side, resized to {meta["image_size"]} px. Output: p(male), calibrated by
temperature scaling (T = {meta["temperature"]:.3f}); label `male` at p(male) ≥ {meta["threshold"]:.3f}, else `female`.
The metadata (threshold, temperature, crop, size, full config, training metrics, library versions) is inside
the file (`metadata_props`, key `facegender`).

## How it was made

`facegender train --preset default --data ../shared/data/lfw-adverse/train ../shared/data/lfw-adverse/train-extra
--val ../shared/data/lfw-adverse/val` on a 2-core x86_64 CPU, {training["wall_time_s"]:.0f} s wall
(a test run shared the CPU for part of it), {training["epochs_run"]} epochs including the head-only
warm-up (early stopping on validation AUC ended it and restored the best epoch). Training photos ({data}):
{training["train_counts"]["female"]} female, {training["train_counts"]["male"]} male; validation (val/):
{training["val_counts"]["female"]} female, {training["val_counts"]["male"]} male.

## Data and provenance

Photos from Labeled Faces in the Wild (LFW: news photographs of public figures, 250x250, face centred),
degraded as in the FACECOM challenge (one of clean, blurred, foggy, low light, noisy, rainy, resized,
sunny/overexposed per photo). Labels: the binary female/male annotations of Afifi & Abdelhamed (AFIF4,
arXiv:1706.04277) as annotated — perceived presentation in a photo, not anyone's gender identity. LFW has
no explicit licence (research use); the label lists have none either. The splits are identity-disjoint.

## Measured on lfw-adverse val (422 photos)

`facegender evaluate --data ../shared/data/lfw-adverse/val --corrupt` with this model:

| accuracy | macro-F1 | female precision / recall | male precision / recall | ECE | Brier |
|---|---|---|---|---|---|
| {result["accuracy"]:.4f} | {result["macro_f1"]:.4f} | {pc["female"]["precision"]:.3f} / {pc["female"]["recall"]:.3f} | {pc["male"]["precision"]:.3f} / {pc["male"]["recall"]:.3f} | {cal["ece"]:.4f} | {cal["brier"]:.4f} |

Validation ECE before temperature scaling: {meta["val_metrics"].get("ece_before_temperature", float("nan")):.4f}.
val/ chose the early-stopping epoch, the temperature and the threshold, so these numbers are optimistic;
an independent set of other photos and other people is the fair test.

Per condition:

{condition_table(result["slices"])}

Worst slice: {result["worst_slice"]["column"]} = {result["worst_slice"]["value"]} (accuracy {result["worst_slice"]["accuracy"]:.3f}).

Robustness suite (`--corrupt`: the {result["robustness"]["n"]} clean val photos under synthetic conditions,
seed {result["robustness"]["seed"]}; accuracy):

{robustness_table(result["robustness"])}

## Intended use

Research and aggregate analysis of roughly frontal faces, including degraded ones. The network itself was
trained on, and classifies, face crops framed like LFW's (face centred, head and shoulders); `facegender
predict` and `serve` find the faces in other photos first (the bundled BlazeFace detector) and frame each
face that way. Faces the detector misses (measured recall on the LFW-adverse val photos 0.988, lowest in
fog, 0.943) get `no_face`, not a guess.

## Not for

Decisions about individuals (access, hiring, policing, moderation), inferring anyone's gender identity,
or any use where a wrong label harms someone. Two labels cannot describe non-binary people.

## Known limits and bias

- LFW is mostly adult public figures photographed by the press in the 2000s; it over-represents men
  (about 3-4 men per woman in these splits) and lighter skin tones. Accuracy across age, skin tone and
  ethnicity has not been measured here; expect it to be lower for groups rare in LFW.
- Female recall is lower than male recall (see above): with the threshold tuned for macro-F1, women are
  more often labelled male than the reverse.
- Hair, make-up, clothing and context in the crop influence the output (the crop keeps head and shoulders).
"""
    (TARGET / "MODEL_CARD.md").write_text(card)
    print(f"shipped {run / 'model.onnx'} -> {TARGET} ({size_mb:.1f} MB) with MODEL_CARD.md")


if __name__ == "__main__":
    main()
