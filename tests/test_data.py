import numpy as np
import pytest
from conftest import make_dataset

from facegender.data import load_images, overlap, resolve_splits, scan_dataset, split_train_val
from facegender.errors import FaceGenderError
from facegender.training.inputs import class_weight_of, oversample_indices


def test_scan_reads_classes_any_case_and_labels_csv(tmp_path):
    root = make_dataset(tmp_path / "d", n_female=3, n_male=5)
    (root / "female").rename(root / "Female")
    (root / "male" / "notes.txt").write_text("ignored")
    ds = scan_dataset(root)
    assert ds.counts() == {"female": 3, "male": 5}
    assert list(ds.labels[:3]) == [0, 0, 0] and all(p.parent.name == "Female" for p in ds.files[:3])
    assert set(ds.columns) == {"gender", "identity", "condition"}
    assert ds.columns["condition"][:2] == ["clean", "foggy"]  # labels.csv says female/, folder is Female/
    assert len(ds.columns["identity"]) == len(ds)


def test_missing_class_or_too_few_images_is_refused(tmp_path):
    root = make_dataset(tmp_path / "d", n_female=1, n_male=3)
    with pytest.raises(FaceGenderError, match=r"female/ has 1 image\(s\), and 2 or more are needed"):
        scan_dataset(root)
    (root / "female").rename(root / "women")
    with pytest.raises(FaceGenderError, match=r"no 'female/' folder \(found: male, women\)"):
        scan_dataset(root)
    with pytest.raises(FaceGenderError, match="dataset folder not found"):
        scan_dataset(tmp_path / "nowhere")


def test_split_keeps_identities_together_and_is_stratified(tmp_path):
    ds = scan_dataset(make_dataset(tmp_path / "d", n_female=10, n_male=20))
    train, val = split_train_val(ds, 0.2, seed=1)
    assert len(train) + len(val) == len(ds)
    assert set(train.columns["identity"]).isdisjoint(val.columns["identity"])
    assert val.counts()["female"] >= 1 and val.counts()["male"] >= 1
    assert split_train_val(ds, 0.2, seed=1)[1].files == val.files  # reproducible


def test_resolve_splits_accepts_a_parent_folder(tmp_path):
    make_dataset(tmp_path / "train")
    make_dataset(tmp_path / "val", seed=1)
    assert resolve_splits(tmp_path, None) == (tmp_path / "train", tmp_path / "val")
    assert resolve_splits(tmp_path / "train", None) == (tmp_path / "train", None)


def test_overlap_finds_the_same_image_in_both(tmp_path):
    a = scan_dataset(make_dataset(tmp_path / "a"))
    b = scan_dataset(make_dataset(tmp_path / "b", seed=5))
    assert overlap(a, b) == []
    (tmp_path / "b" / "male" / "copy.png").write_bytes(a.files[-1].read_bytes())
    assert overlap(a, scan_dataset(tmp_path / "b")) == [str(tmp_path / "b" / "male" / "copy.png")]


def test_load_images_skips_unreadable_files(tmp_path):
    ds = scan_dataset(make_dataset(tmp_path / "d"))
    ds.files[1].write_bytes(b"garbage")
    images, kept, errors = load_images(ds.files, 32, 0.8)
    assert images.shape == (len(ds) - 1, 32, 32, 3) and 1 not in kept
    assert [e.path for e in errors] == [str(ds.files[1])]


def test_oversampling_balances_classes_and_weights_follow():
    labels = np.array([0] * 3 + [1] * 10)
    idx = oversample_indices(labels, np.random.default_rng(0))
    assert np.bincount(labels[idx]).tolist() == [10, 10]
    assert set(idx[:13]) == set(range(13))  # every original image is kept
    assert class_weight_of(labels[idx]) == {0: 1.0, 1: 1.0}
    assert class_weight_of(labels) == pytest.approx({0: 13 / 6, 1: 13 / 20})


def test_folder_scan_skips_fifos_but_keeps_links_that_cannot_be_followed(tmp_path):
    import os

    from facegender.imagefiles import iter_image_files

    root = make_dataset(tmp_path / "d", n_female=2, n_male=2)
    os.mkfifo(root / "female" / "fifo.jpg")
    (root / "female" / "loop.jpg").symlink_to("loop.jpg")
    (root / "female" / "good_link.jpg").symlink_to("female_0_0.jpg")
    names = [p.name for p in iter_image_files(root / "female")]
    assert names == ["female_0_0.jpg", "female_0_1.jpg", "good_link.jpg", "loop.jpg"]  # loop: reported unreadable
    assert scan_dataset(root).counts() == {"female": 4, "male": 2}  # the loop too: named when it fails to load


def test_labels_csv_with_a_bom_is_read_and_latin1_is_refused_with_the_fix(tmp_path):
    root = make_dataset(tmp_path / "d", n_female=2, n_male=2)
    text = (root / "labels.csv").read_text(encoding="utf-8")
    (root / "labels.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # Excel's "CSV UTF-8"
    assert scan_dataset(root).columns["condition"] == ["clean", "foggy", "clean", "foggy"]
    (root / "labels.csv").write_bytes(text.replace("foggy", "brumeux dégagé").encode("latin-1"))
    with pytest.raises(FaceGenderError, match=r"labels.csv: it is not UTF-8 text .*; save it as UTF-8"):
        scan_dataset(root)


def test_two_folders_for_one_class_are_refused(tmp_path):
    root = make_dataset(tmp_path / "d", 3, 3)
    (root / "Female").mkdir()
    with pytest.raises(FaceGenderError, match="two folders for one class, Female/ and female/; merge them"):
        scan_dataset(root)


def test_a_broken_link_in_a_class_folder_is_named_as_unreadable(tmp_path):
    root = make_dataset(tmp_path / "d", 3, 3)
    (root / "male" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    dataset = scan_dataset(root)
    assert root / "male" / "gone.jpg" in dataset.files and len(dataset) == 7
    images, _, errors = load_images(dataset.files, 32, 1.0)
    assert len(images) == 6 and [e.path for e in errors] == [str(root / "male" / "gone.jpg")]
