from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset, portrait
from PIL import Image

from facegender.cli import flag
from facegender.data import (
    Dataset,
    age_band,
    concat,
    load_images,
    overlap,
    refuse_inside_class_folders,
    resolve_splits,
    scan_dataset,
    source_name,
    split_train_val,
)
from facegender.errors import FaceGenderError
from facegender.faces.images import center_crop, load_image, prepare
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


def in_memory(root: str, labels: list[int], **columns: list[str]) -> Dataset:
    files = [Path(root) / ("female" if label == 0 else "male") / f"{i}.png" for i, label in enumerate(labels)]
    return Dataset(root=Path(root), files=files, labels=np.array(labels), columns=dict(columns))


def test_concat_names_each_source_and_fills_missing_columns():
    a = in_memory("/data/lfw/train", [0, 1], condition=["fog", "rain"], source=["old", "old"])
    b = in_memory("/data/utk/train", [1], age=["30"])
    c = in_memory("/other/lfw/train", [0, 0])  # a third folder of the same name as the first
    d = in_memory("/more/lfw/train", [1])
    assert concat([a]) is a
    both = concat([a, b, c, d])
    assert both.root == Path("/data/lfw/train") and both.files == a.files + b.files + c.files + d.files
    assert both.labels.tolist() == [0, 1, 1, 0, 0, 1]
    assert both.columns == {
        "age": ["unknown", "unknown", "30", "unknown", "unknown", "unknown"],
        "condition": ["fog", "rain", "unknown", "unknown", "unknown", "unknown"],
        "source": ["lfw/train", "lfw/train", "utk/train", "lfw/train+", "lfw/train+", "lfw/train++"],
    }
    assert list(both.columns) == ["age", "condition", "source"]
    assert source_name(Path("/data/lfw/val")) == "lfw/val" and source_name(Path("/val")) == "val"
    assert source_name("lfw/val") == "lfw/val"


def test_subset_keeps_the_root_and_aligns_the_columns():
    ds = in_memory("/data/d", [0, 1, 1], condition=["a", "b", "c"])
    sub = ds.subset([2, 0])
    assert sub.root == ds.root and sub.files == [ds.files[2], ds.files[0]] and sub.labels.tolist() == [1, 0]
    assert sub.columns == {"condition": ["c", "a"]}


def test_an_output_folder_inside_a_class_folder_is_refused(tmp_path):
    root = tmp_path / "data"
    for folder in ("female", "Male", "other"):
        (root / folder).mkdir(parents=True)
    files = [root / "female" / "a.jpg", root / "Male" / "b.jpg", root / "other" / "c.jpg"]
    (tmp_path / "link").symlink_to(root / "female")
    for out, folder in ((root / "female" / "out", "female"), (root / "MALE" / "sub", "Male"),
                        (tmp_path / "link" / "sub", "female")):  # fmt: skip
        for some in (
            [f for f in files if f.parent.name != "other"],
            [f for f in files if f.parent.name in (folder, "other")],
        ):
            with pytest.raises(FaceGenderError) as info:
                refuse_inside_class_folders(out, some, "--val-out")
            assert str(info.value) == (  # the class folder it is inside, not the first one found
                f"--val-out {out} is inside the class folder {root / folder}: its images would be read as photos "
                "the next time; choose a folder outside the dataset's class folders"
            )
    with pytest.raises(FaceGenderError, match=r"^--out "):
        refuse_inside_class_folders(root / "male", files)
    for out in (root, root / "out", root / "other" / "out", tmp_path / "elsewhere", tmp_path):
        refuse_inside_class_folders(out, files)


def test_load_images_reports_progress_keeps_indices_and_the_squares(tmp_path):
    ds = scan_dataset(make_dataset(tmp_path / "d", n_female=2, n_male=2))  # 48 px photos
    ds.files[1].write_bytes(b"garbage")
    ticks: list[int] = []
    squares: list[np.ndarray] = []
    images, kept, errors = load_images(ds.files, 32, 1.0, progress=ticks.append, squares=squares)
    assert ticks == [1, 1, 1, 1] and kept == [0, 2, 3] and [e.path for e in errors] == [str(ds.files[1])]
    photos = [load_image(ds.files[i]) for i in kept]
    for image, square, photo in zip(images, squares, photos, strict=True):
        np.testing.assert_array_equal(image, prepare(photo, 32))
        np.testing.assert_array_equal(square, prepare(photo, 32))  # the photo is larger: the square at 32 px
    squares.clear()
    load_images(ds.files, 64, 0.5, squares=squares)  # a 24 px centre square is smaller than 64: kept as it is
    assert [s.shape for s in squares] == [(24, 24, 3)] * 3
    for square, photo in zip(squares, photos, strict=True):
        np.testing.assert_array_equal(square, center_crop(photo, 0.5))
    images, kept, errors = load_images([ds.files[1]], 32, 1.0)
    assert images.shape == (0, 32, 32, 3) and images.dtype == np.uint8 and kept == [] and len(errors) == 1


def test_load_images_frames_the_detected_face_at_its_scale(tmp_path):
    from facegender.faces.detect import FaceDetector, face_inputs

    face = Image.open(portrait()).resize((128, 150))
    scene = Image.new("RGB", (450, 250), (110, 120, 105))
    scene.paste(face, (250, 60))
    paths = [tmp_path / "scene.png", tmp_path / "face.png", tmp_path / "blank.png"]  # a face crop, then no face
    scene.save(paths[0])
    face.save(paths[1])
    Image.new("RGB", (120, 120), (90, 90, 90)).save(paths[2])
    detector = FaceDetector()
    framed = {}
    for scale in (1.5, None):  # None: the default, the training photos' framing
        images, kept, errors = load_images(paths, 32, 0.9, face_crops=True, **({"face_scale": scale} if scale else {}))
        assert kept == [0, 1, 2] and not errors
        for image, path in zip(images[:2], paths[:2], strict=False):
            (expected,) = face_inputs(load_image(path), 32, 0.9, detector, "auto", True, True, scale or 2.38)
            np.testing.assert_array_equal(image, expected.image)
            assert not np.array_equal(image, prepare(load_image(path), 32, 0.9))  # not the whole photo
        np.testing.assert_array_equal(images[2], prepare(load_image(paths[2]), 32, 0.9))
        framed[scale] = images
    assert not np.array_equal(framed[1.5][0], framed[None][0])
    whole, _, _ = load_images(paths[:2], 32, 0.9)  # without face_crops: the whole photo
    for image, path in zip(whole, paths[:2], strict=True):
        np.testing.assert_array_equal(image, prepare(load_image(path), 32, 0.9))


def in_groups(labels: list[int], identities: list[str] | None) -> Dataset:
    return in_memory("/d", labels, **({"identity": identities} if identities is not None else {}))


def test_split_takes_whole_groups_until_the_validation_share_is_reached():
    # 10 of each class, no identities: each photo its own group, 2 of each to validation at 0.2
    for identities in (None, ["unknown"] * 20):
        train, val = split_train_val(in_groups([0] * 10 + [1] * 10, identities), 0.2, seed=0)
        assert val.counts() == {"female": 2, "male": 2} and train.counts() == {"female": 8, "male": 8}
    # 5 of each at 0.1: round(0.5) = 0 photos, but at least one goes to validation
    train, val = split_train_val(in_groups([0] * 5 + [1] * 5, None), 0.1, seed=0)
    assert val.counts() == {"female": 1, "male": 1}
    # groups of 3: the first group taken reaches a target of 1; a second would overshoot it
    people = [f"p{i // 3}" for i in range(12)]
    train, val = split_train_val(in_groups([0] * 6 + [1] * 6, people), 0.1, seed=3)
    assert val.counts() == {"female": 3, "male": 3} and len(set(val.columns["identity"])) == 2
    with pytest.raises(FaceGenderError) as info:
        split_train_val(in_groups([0, 1, 1, 1], None), 0.2, seed=0)  # the one female photo would go to validation
    assert str(info.value) == "too few images to split off a validation set; pass val DIR"  # train()'s parameter
    assert info.value.worded(flag) == "too few images to split off a validation set; pass --val DIR"


@pytest.mark.parametrize(
    ("age", "band"),
    [("0", "0-17"), ("17.9", "0-17"), ("45", "45-59"), ("149.9", "60+"), ("150", "unknown"), ("150.5", "unknown"),
     ("-1", "unknown"), ("", "unknown"), ("nan", "unknown")],
)  # fmt: skip
def test_age_band_edges(age, band):
    assert age_band(age) == band


def test_resolve_splits_without_a_val_folder_and_with_one_named(tmp_path):
    (tmp_path / "train").mkdir()
    assert resolve_splits(tmp_path, None) == (tmp_path / "train", None)
    assert resolve_splits(str(tmp_path), "elsewhere/val") == (tmp_path, Path("elsewhere/val"))


def test_overlap_reads_past_an_unreadable_file(tmp_path):
    a = scan_dataset(make_dataset(tmp_path / "a"))
    b = in_memory(str(tmp_path / "b"), [0, 0])
    b.files = [tmp_path / "gone.png", tmp_path / "copy.png"]
    b.files[1].write_bytes(a.files[0].read_bytes())
    assert overlap(a, b) == [str(tmp_path / "copy.png")]


def test_scan_refuses_a_file_and_a_folder_without_class_folders(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FaceGenderError) as info:
        scan_dataset(tmp_path / "file")
    assert str(info.value) == f"dataset path is not a folder: {tmp_path / 'file'}"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FaceGenderError) as info:
        scan_dataset(tmp_path / "empty")
    assert str(info.value) == (
        f"dataset {tmp_path / 'empty'} has no 'female/' or 'male/' folder (found: no subfolders); expected one "
        "subfolder per class: male/ and female/ (any letter case) holding jpg, jpeg, png, bmp or webp images"
    )
    root = make_dataset(tmp_path / "d", 2, 2)
    (root / "MALE").write_text("a file named like a class folder is not one")
    assert scan_dataset(root).counts() == {"female": 2, "male": 2}


def test_labels_csv_problems_are_named(tmp_path):
    root = make_dataset(tmp_path / "d", 2, 2)
    csv_path = root / "labels.csv"
    cases = {
        b"name,condition\nfemale/female_0_0.jpg,fog\n": f"{csv_path} needs a header row with a 'file' column (path "
        f"relative to {root})",
        b"file,condition\n": f"{csv_path} has a header but no rows; add one row per photo (file relative to {root}) "
        "or delete the file",
        b"file,condition\nfemale/female_0_0.jpg," + b"x" * 200_000 + b"\n": f"could not read {csv_path}: ",
        b"file,condition\nfemale/female_0_0.jpg,caf\xe9\n": f"could not read {csv_path}: it is not UTF-8 text (",
    }
    for content, start in cases.items():
        csv_path.write_bytes(content)
        with pytest.raises(FaceGenderError) as info:
            scan_dataset(root)
        assert str(info.value).startswith(start), str(info.value)
    assert str(info.value).endswith("); save it as UTF-8 (in Excel: CSV UTF-8)")


def test_labels_csv_with_one_row_a_quoted_line_break_and_its_own_age_bands(tmp_path):
    root = make_dataset(tmp_path / "d", 2, 2)
    (root / "labels.csv").write_bytes(b'file,note,age,age_band\r\nfemale/female_0_0.jpg,"fog\r\nrain",34,adult\r\n')
    ds = scan_dataset(root)
    assert ds.columns == {"note": ["fog\r\nrain", "unknown", "unknown", "unknown"],
                          "age": ["34", "unknown", "unknown", "unknown"],
                          "age_band": ["adult", "unknown", "unknown", "unknown"]}  # fmt: skip
