import numpy as np
import pytest
from sklearn.metrics import f1_score

from facegender.evaluation import metrics


def test_threshold_maximises_macro_f1():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99])
    t = metrics.tune_threshold(y, p)
    assert 0.7 < t <= 0.75
    assert metrics.macro_f1(y, metrics.predict_labels(p, t)) == 1.0


def test_threshold_ties_go_to_nearest_half():
    y = np.array([0, 1])
    p = np.array([0.2, 0.8])  # every threshold in (0.2, 0.8] is perfect
    assert metrics.tune_threshold(y, p) == 0.5
    p = np.array([0.05, 0.3])  # perfect for (0.05, 0.3]: nearest to 0.5 is 0.3
    assert metrics.tune_threshold(y, p) == 0.3


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.4 + rng.random(200) * 0.6, 0, 1)
    m = metrics.classification_metrics(y, p, 0.5)
    pred = (p >= 0.5).astype(int)
    assert m["macro_f1"] == f1_score(y, pred, average="macro")
    assert m["accuracy"] == np.mean(pred == y)
    assert m["labels"] == ["female", "male"]
    assert np.array(m["confusion_matrix"]).sum() == 200
    assert m["per_class"]["female"]["support"] == int(np.sum(y == 0))
    tn = m["confusion_matrix"][0][0]
    assert m["per_class"]["female"]["recall"] == tn / np.sum(y == 0)


def test_slices_by_column():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.9, 0.9, 0.8])
    s = metrics.slice_metrics(y, p, 0.5, {"condition": ["clean", "foggy", "clean", "foggy"], "identity": list("abcd"),
         "gender": ["female", "female", "male", "male"]})  # fmt: skip
    assert set(s) == {"condition"}  # identity is not a categorical slice; gender repeats the label
    assert s["condition"]["clean"] == {
        "accuracy": 1.0, "macro_f1": 1.0, "recall": {"female": 1.0, "male": 1.0}, "n": 2}  # fmt: skip
    assert s["condition"]["foggy"]["accuracy"] == 0.5
    assert s["condition"]["foggy"]["recall"] == {"female": 0.0, "male": 1.0}
    worst = metrics.worst_slice(s, min_n=1)
    assert (worst["column"], worst["value"]) == ("condition", "foggy")


def test_threshold_sweep_rows():
    y = np.array([0, 0, 1, 1])
    sweep = metrics.threshold_sweep(y, np.array([0.1, 0.4, 0.6, 0.9]), grid=np.array([0.05, 0.5, 0.95]))
    assert sweep["macro_f1"][1] == 1.0
    assert sweep["female_recall"] == [0.0, 1.0, 1.0] and sweep["male_recall"] == [1.0, 1.0, 0.0]


def test_report_text_names_threshold_and_classes():
    text = metrics.report_text(np.array([0, 1]), np.array([0.2, 0.7]), 0.45)
    assert "threshold on p(male): 0.450" in text and "female" in text and "macro avg" in text


def test_slice_gaps_are_best_minus_worst_group_with_enough_photos():
    from facegender.evaluation.metrics import slice_gaps

    slices = {
        "race": {
            "asian": {"accuracy": 0.90, "n": 10},
            "black": {"accuracy": 0.80, "n": 10},
            "white": {"accuracy": 0.95, "n": 10},
            "other": {"accuracy": 0.10, "n": 2},  # too few photos to count
            "unknown": {"accuracy": 0.0, "n": 50},
        },
        "condition": {"clean": {"accuracy": 1.0, "n": 9}},  # one group: no gap
    }
    assert slice_gaps(slices) == {"race": pytest.approx(0.15)}


@pytest.mark.parametrize(
    ("age", "band"),
    [("12", "0-17"), ("18", "18-29"), ("29.5", "18-29"), ("44", "30-44"), ("60", "60+"), ("x", "unknown")],
)
def test_age_bands(age, band):
    from facegender.data import age_band

    assert age_band(age) == band
