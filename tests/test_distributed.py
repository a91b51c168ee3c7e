"""`facegender predict --engine ray` (distributed/predict.py): the rows of local predict, computed on a local Ray
cluster that the tests start themselves (2 CPUs, no external service)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import brightness_onnx, grey_photo, portrait
from ray_fault import KILL_ENV

from facegender.errors import FaceGenderError
from facegender.runtime.predict import format_results, predict

pytestmark = pytest.mark.usefixtures("one_ray_cluster_at_a_time")  # conftest: Ray test files take turns

TESTS = Path(__file__).resolve().parent
META = {"format_version": 1, "name": "brightness", "class_names": ["female", "male"], "image_size": 32, "crop": 1.0,
        "threshold": 0.5, "temperature": 1.0}  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-CPU Ray cluster in this process for the module; every worker loads tests/ray_fault.py's hook, which
    kills one actor once its folder is armed."""
    pytest.importorskip("ray.data")
    import ray

    armed = tmp_path_factory.mktemp("fault") / "armed"
    with pytest.MonkeyPatch.context() as patch:  # the workers inherit the raylet's environment, set here
        patch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
        patch.setenv(KILL_ENV, str(armed))
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=150 * 2**20, logging_level=logging.WARNING,
                 runtime_env={"worker_process_setup_hook": "ray_fault.kill_once_mid_run"})  # fmt: skip
    yield armed
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """The brightness model: a grey photo of level g gets p(male) g / 256 exactly."""
    pytest.importorskip("onnx")
    return brightness_onnx(tmp_path_factory.mktemp("model") / "brightness.onnx", META)


def photo_folder(root: Path, count: int) -> Path:
    """`count` grey photos of different levels, some in a subfolder, and two that cannot be read."""
    (root / "sub").mkdir(parents=True)
    for i in range(count):
        grey_photo(root / ("sub" if i % 4 == 0 else "") / f"p{i:03d}.png", 20 + (i * 7) % 220)
    (root / "broken.png").write_bytes(b"not a png at all")
    (root / "empty.jpg").write_bytes(b"")
    return root


def local_rows(inputs: list[str], model: Path, **options) -> list[dict]:
    """What local predict gives, input by input (an input that names nothing has its error row in its place)."""
    return [row for item in inputs for row in predict([item], str(model), **options)]


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    """A folder, a missing file, a text listing and a Parquet listing, relative to the current folder; with the
    file lists local predict is given for each listing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    photo_folder(Path("photos"), 13)
    Path("listing.txt").write_text("photos/p001.png\r\n\nphotos/gone.png\n" + str(tmp_path / "photos/empty.jpg") + "\n")
    pq.write_table(pa.table({"id": [1, 2], "path": ["photos/sub/p004.png", "photos/broken.png"]}), "listing.parquet")
    given = ["photos", "missing.png", "listing.txt", "listing.parquet"]
    local = ["photos", "missing.png", "photos/p001.png", "photos/gone.png", str(tmp_path / "photos/empty.jpg"),
             "photos/sub/p004.png", "photos/broken.png"]  # fmt: skip
    return given, local


@pytest.mark.parametrize("suffix", [".json", ".csv", ".parquet"])
def test_rows_equal_local_predict_with_error_rows_in_every_format(cluster, model, inputs, suffix):
    from facegender.distributed.predict import predict_to_file

    given, local = inputs
    expected = local_rows(local, model, detect="off")
    assert sum(row["label"] == "error" for row in expected) == 6  # broken and empty (each twice), missing, gone
    summary = predict_to_file(given, f"rows{suffix}", model=str(model), detect="off", workers=2, photos_per_task=4)
    out = Path(f"rows{suffix}")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(out).to_pylist() == expected
    else:  # byte for byte what `facegender predict --format json|csv --output` writes
        assert out.read_text(encoding="utf-8") == format_results(expected, suffix[1:]) + "\n"
    assert (summary.photos, summary.faces, summary.errors) == (len(expected), len(expected) - 6, 6)
    assert sorted(p.name for p in Path().iterdir()) == sorted(["photos", "listing.txt", "listing.parquet", out.name])


def test_a_worker_killed_mid_run_loses_and_duplicates_no_row(cluster, model, tmp_path):
    import pyarrow.parquet as pq

    from facegender.distributed.predict import predict_to_file

    photos = photo_folder(tmp_path / "photos", 46)  # 48 files in blocks of 4: each actor gets several
    cluster.mkdir()  # armed: the first actor to finish its second block dies before returning its rows
    predict_to_file([str(photos)], tmp_path / "rows.parquet", model=str(model), detect="off", workers=2,
                    photos_per_task=4)  # fmt: skip
    assert (cluster / "killed").exists(), "no worker was killed: the test proved nothing"
    rows = pq.read_table(tmp_path / "rows.parquet").to_pylist()
    assert len({row["file"] for row in rows}) == len(rows) == 48  # none twice
    assert rows == local_rows([str(photos)], model, detect="off")  # and in order, though the redone blocks came last


def test_a_failed_run_leaves_the_previous_output_and_no_shards(cluster, tmp_path, monkeypatch):
    import shutil

    from facegender.distributed import predict as distributed

    # p(male) = mean / 64: the dark photos are fine, the last one (bright) breaks the run once shards are written
    broken = brightness_onnx(tmp_path / "over.onnx", META, scale=1 / 64)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(40):
        grey_photo(photos / f"p{i:02d}.png", 10 if i < 39 else 200)
    out = tmp_path / "out" / "rows.csv"
    out.parent.mkdir()
    out.write_text("yesterday's results\n")
    removed: list[str] = []
    remove = shutil.rmtree

    def spy(path, *args, **kwargs):  # what the failed run had written when it cleaned up
        removed.extend(p.name for p in Path(path).glob("*.parquet"))
        return remove(path, *args, **kwargs)

    monkeypatch.setattr(distributed, "ROWS_PER_SHARD", 2)  # a shard per block, written as blocks finish
    monkeypatch.setattr(distributed.shutil, "rmtree", spy)
    with pytest.raises(FaceGenderError, match="not a probability") as failure:
        distributed.predict_to_file([str(photos)], out, model=str(broken), detect="off", workers=2, photos_per_task=2)
    assert "\n" not in str(failure.value)
    assert out.read_text() == "yesterday's results\n"
    assert [p.name for p in out.parent.iterdir()] == ["rows.csv"]  # no staging folder, no temporary file
    assert removed, "no shard was written before the failure: the test proved nothing"


def test_cli_joins_a_running_cluster_finds_faces_and_sums_up(cluster, model, tmp_path):
    import ray

    photos = photo_folder(tmp_path / "photos", 5)
    (photos / "portrait.jpg").write_bytes(portrait().read_bytes())  # one real face: the detector runs in actors
    out = tmp_path / "rows.json"
    from ray._private.state import jobs  # Ray's job table: no public call without the dashboard

    address = ray.get_runtime_context().gcs_address
    before = len(jobs())
    args = ["predict", str(photos), "--engine", "ray", "--ray-address", address, "--workers", "2", "--model",
            str(model), "--output", str(out)]  # fmt: skip
    # os.environ now holds RAY_AUTH_MODE=token, which ray.init set: a client joins with the cluster's token
    result = subprocess.run([sys.executable, "-m", "facegender", *args], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)  # fmt: skip
    assert result.returncode == 1, result.stderr  # 1: some photos could not be read, as local predict says
    assert len(jobs()) == before + 1  # it ran on this cluster, not on one of its own
    expected = list(predict([str(photos)], str(model)))
    assert json.loads(out.read_text()) == expected
    assert any(row["face_index"] == 0 and row["box"] for row in expected)  # the portrait's face was found
    summary = f"{len(expected)} photos, 1 faces, 2 errors, "
    assert re.fullmatch(rf"{summary}[0-9.]+ photos/s -> {re.escape(str(out))}", result.stdout.strip()), result.stdout
    assert f"could not read {photos / 'broken.png'}: not an image" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_ray_the_engine_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys, image):
    from facegender.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as it does where ray is not installed
    assert main(["predict", str(image), "--engine", "ray", "--output", str(tmp_path / "rows.parquet")]) == 2
    err = capsys.readouterr().err
    assert err == "error: --engine ray needs Ray Data: install it with pip install 'facegender[distributed]'\n"
    assert not (tmp_path / "rows.parquet").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "--engine ray writes its results to a file: add --output results.parquet"),
        (["--output", "rows.txt"], "writes --output as .parquet, .csv or .json"),
        (["--output", "rows.csv", "--format", "json"], "not --format json"),
        (["--output", "rows.csv", "--annotate", "drawn"], "--annotate runs with --engine local only"),
        (["--output", "rows.csv", "--workers", "0"], "--workers must be >= 1, got 0"),
    ],
)
def test_ray_usage_errors_are_one_line_before_any_work(tmp_path, monkeypatch, capsys, image, options, message):
    from facegender.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(image), "--engine", "ray", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png"]


def test_ray_options_without_the_ray_engine_are_refused(capsys, image):
    from facegender.cli import main

    assert main(["predict", str(image), "--workers", "2", "--ray-address", "10.0.0.5:6379"]) == 2
    assert capsys.readouterr().err == "error: --ray-address, --workers run Ray workers: add --engine ray\n"


def test_the_merge_puts_shards_in_input_order_and_refuses_a_repeated_block(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from facegender.distributed.predict import _in_order, _schemas

    def shard(name: str, numbers: list[int]) -> Path:
        rows = [{"file": f"p{n}", "label": "male", "seq": n} for n in numbers]
        pq.write_table(pa.Table.from_pylist(rows, schema=_schemas()[1]), tmp_path / name)
        return tmp_path / name

    # blocks [0 1 1] (a photo with two faces), [2 3], [4], written as a retry leaves them: 4 and 2-3 first
    shards = [shard("a.parquet", [4, 2, 3]), shard("b.parquet", [0, 1, 1])]
    rows = [row for table in _in_order(shards) for row in table.to_pylist()]
    assert [row["file"] for row in rows] == ["p0", "p1", "p1", "p2", "p3", "p4"] and "seq" not in rows[0]
    with pytest.raises(FaceGenderError, match="rows lost or repeated"):
        list(_in_order([*shards, shard("c.parquet", [2, 3])]))  # a block written twice
    with pytest.raises(FaceGenderError, match="rows lost or repeated"):
        list(_in_order([shard("d.parquet", [0, 1]), shard("e.parquet", [3])]))  # a block lost


def test_streamed_json_and_csv_are_the_text_of_local_predict():
    import csv
    import io

    from facegender.runtime.predict import stream_results
    from facegender.runtime.rows import error_row, result_row

    rows = [result_row("a\nb.png", 0.25, 0.5, box=(1, 2, 3, 4), face_score=0.9), error_row("x.png", 'bad "q", c', 0.5),
            result_row("é.png", 0.75, 0.5)]  # fmt: skip
    for some in (rows, rows[:1], []):
        assert "".join(stream_results(iter(some), "json")) == json.dumps(some, indent=2, ensure_ascii=False)
        text = "".join(stream_results(iter(some), "csv"))
        assert [dict(r) for r in csv.DictReader(io.StringIO(text))] == [
            {k: "" if v is None else (" ".join(map(str, v)) if k == "box" else str(v)) for k, v in r.items()}
            for r in some
        ]


def test_the_worker_hook_silences_ray_trains_cleaner_and_nothing_else(monkeypatch):
    """quiet_ray_train_cleaner (every Ray worker's setup hook): the warnings of the cleaner and of the autoscaling
    client, and the cleaner thread's end after a Ctrl-C, are silent; another logger's warnings and another thread's
    end still reach the hook before it."""
    import threading

    from facegender.distributed.cluster import CLEANER_THREAD, quiet_ray_train_cleaner

    quiet = [
        logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner"),
        logging.getLogger("ray.train.v2._internal.execution.scaling_policy.autoscaling_coordinator_client"),
    ]
    for logger in quiet:
        monkeypatch.setattr(logger, "level", logger.level)  # restored afterwards
    reported: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.thread.name))
    quiet_ray_train_cleaner()
    for logger in quiet:
        assert not logger.isEnabledFor(logging.WARNING) and logger.isEnabledFor(logging.ERROR)
    assert logging.getLogger("ray.train.v2._internal.execution.controller").isEnabledFor(logging.WARNING)

    def fail() -> None:
        raise RuntimeError("the cluster went away")

    for name in (CLEANER_THREAD, "another thread"):
        thread = threading.Thread(target=fail, name=name)
        thread.start()
        thread.join()
    assert reported == ["another thread"]
