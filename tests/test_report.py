"""report.html: one self-contained page with every table and picture, checked in a real headless browser."""

from __future__ import annotations

import json

import numpy as np
import pytest
from browser import launch
from conftest import make_dataset

from facegender.data import scan_dataset
from facegender.evaluation.evaluate import write_evaluation


@pytest.fixture
def evaluation(tmp_path):
    ds = scan_dataset(make_dataset(tmp_path / "data", n_female=6, n_male=8))
    p = np.clip(ds.labels * 0.3 + np.random.default_rng(0).random(len(ds)) * 0.7, 0, 1)
    out = tmp_path / "eval"
    result = write_evaluation(out, ds, p, 0.5)
    return out, result


def test_report_is_self_contained(evaluation):
    out, result = evaluation
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing to fetch: works offline
    assert page.count("data:image/png;base64,") == 5
    assert f"{result['macro_f1']:.4f}" in page and "Worst slice" in page
    assert json.loads((out / "metrics.json").read_text())["worst_slice"]["column"] == "condition"


def test_report_renders_in_chromium(evaluation, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    out, _ = evaluation
    requests = []
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto((out / "report.html").as_uri())
        assert page.title() == "facegender evaluation"
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
        assert len(widths) >= 5 and min(widths) > 0  # every embedded picture decoded
        assert page.locator("tr.worst").count() == 1
        assert page.locator("h2", has_text="Per class").count() == 1
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert all(u.startswith(("file:", "data:")) for u in requests)
    assert (tmp_path / "report.png").stat().st_size > 10_000
