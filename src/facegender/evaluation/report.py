"""One self-contained `report.html` for an evaluation: every table and picture, images embedded, works offline."""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path
from typing import Any

from PIL import Image

PICTURES = (
    ("confusion_matrix.png", "Confusion matrix"),
    ("roc_curve.png", "ROC curve"),
    ("pr_curve.png", "Precision-recall curve"),
    ("reliability_diagram.png", "Reliability diagram"),
    ("threshold_sweep.png", "Threshold sweep"),
)

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left} tr.worst td{background:#ffe3e3;font-weight:600}
.pics{display:flex;flex-wrap:wrap;gap:1rem} figure{margin:0} figcaption{font-size:.9rem;color:#555}
.thumbs{display:flex;flex-wrap:wrap;gap:.5rem} .thumbs figure{width:120px;font-size:.75rem}
.muted{color:#666}
"""


def _png_data(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _thumbnail(path: Path, size: int = 112) -> str:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def write_report(out: Path, result: dict[str, Any], title: str = "facegender evaluation") -> Path:
    """Write out/report.html from an evaluation result (metrics.json's content) and the pictures in out/."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts.append(
        f'<p class="muted">model: {html.escape(str(result.get("model", "")))} · data: '
        f"{html.escape(str(result.get('data', '')))} · backend: {html.escape(str(result.get('backend', '')))}</p>"
    )
    parts.append("<h2>Summary</h2>")
    parts.append(
        _table(
            ["images", "accuracy", "macro-F1", "threshold on p(male)", "ECE", "Brier", "skipped"],
            [
                [
                    result["n"],
                    result["accuracy"],
                    result["macro_f1"],
                    result["threshold"],
                    result.get("calibration", {}).get("ece"),
                    result.get("calibration", {}).get("brier"),
                    len(result.get("skipped", [])),
                ]
            ],
        )
    )
    parts.append("<h2>Per class</h2>")
    parts.append(
        _table(
            ["class", "precision", "recall", "F1", "support"],
            [[name, v["precision"], v["recall"], v["f1"], v["support"]] for name, v in result["per_class"].items()],
        )
    )
    labels = result["labels"]
    parts.append("<h2>Confusion matrix (rows: true, columns: predicted)</h2>")
    parts.append(_table(["", *labels], [[labels[i], *row] for i, row in enumerate(result["confusion_matrix"])]))
    worst = result.get("worst_slice")
    for column, values in result.get("slices", {}).items():
        parts.append(f"<h2>By {html.escape(column)}</h2>")
        rows, classes = [], []
        for value, s in values.items():
            recall = s.get("recall", {})
            rows.append([value, s["n"], s["accuracy"], s.get("macro_f1"), recall.get("female"), recall.get("male")])
            is_worst = worst and worst["column"] == column and worst["value"] == value
            classes.append("worst" if is_worst else "")
        parts.append(_table([column, "n", "accuracy", "macro-F1", "female recall", "male recall"], rows, classes))
        if worst and worst["column"] == column:
            parts.append(
                f"<p>Worst slice: <b>{html.escape(str(worst['value']))}</b> (accuracy {worst['accuracy']:.3f}).</p>"
            )
    robustness = result.get("robustness")
    if robustness:
        parts.append(f"<h2>Robustness suite ({robustness['n']} clean photos, seed {robustness['seed']})</h2>")
        parts.append(
            _table(
                ["condition", "severity", "accuracy", "macro-F1", "accuracy drop"],
                [
                    [r["condition"], r["severity"], r["accuracy"], r["macro_f1"], r["accuracy_drop"]]
                    for r in robustness["rows"]
                ],
            )
        )
    parts.append("<h2>Pictures</h2><div class='pics'>")
    for name, caption in PICTURES:
        if (out / name).is_file():
            parts.append(
                f"<figure><img src='{_png_data(out / name)}' alt='{caption}' width='420'>"
                f"<figcaption>{caption}</figcaption></figure>"
            )
    parts.append("</div>")
    index = out / "misclassified" / "misclassified.csv"
    if index.is_file():
        with index.open(newline="", encoding="utf-8") as handle:
            wrong = list(csv.DictReader(handle))
        parts.append(f"<h2>Misclassified ({len(wrong)}; first 48 shown)</h2><div class='thumbs'>")
        for row in wrong[:48]:
            image = out / "misclassified" / row["file"]
            if image.is_file():
                parts.append(
                    f"<figure><img src='{_thumbnail(image)}' alt='{html.escape(row['file'])}'>"
                    f"<figcaption>{html.escape(row['true_label'])} → {html.escape(row['predicted_label'])}, "
                    f"p(male) {float(row['p_male']):.2f}</figcaption></figure>"
                )
        parts.append("</div>")
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
