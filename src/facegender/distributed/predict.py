"""Batch prediction on Ray Data: `facegender predict INPUT... --engine ray --output results.parquet`.

The rows are those of runtime.predict.predict, computed by a pool of Ray actors (`map_batches` with the callable
class Predictor). Each actor makes its ONNX Runtime sessions, the classifier's and the face detector's, once: a
session cannot be pickled and is too slow to make per batch. The pipeline:

    inputs -> photo paths, expanded by a Ray task: a folder walked and a text or Parquet listing read a chunk at a
              time (never listed on the driver), files and globs as local predict takes them
           -> blocks of PHOTOS_PER_TASK paths -> Predictor actors -> one row per face, no_face or error
           -> Parquet shards in a hidden staging folder beside the output (write_parquet)
           -> merged in input order into the output file (.parquet, .csv or .json), renamed into place last.

Each photo carries its number in the input order (`seq`), and the merge writes the rows in that order whatever
order the shards hold them in: Ray Data's preserve_order keeps them nearly in order, but not once a task is
retried. Ray restarts an
actor that dies and retries its tasks (a block's rows count only once its task has finished), so a killed worker
neither loses nor duplicates rows; the merge checks that the numbers run without a gap or a repeat. A failed or
interrupted run removes its shards and leaves the output as it was. Photos, model and output must be at the same
paths on every machine of a cluster (a shared filesystem); relative paths are taken from the driver's current folder.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facegender.distributed.cluster import connect, failure_reason, require_ray
from facegender.errors import FaceGenderError, ImageError, InvalidOption, OptionError
from facegender.faces.detect import MIN_SCORE, FaceDetector
from facegender.files import display_name, ensure_writable, is_stream
from facegender.runtime.inference import Classifier
from facegender.runtime.predict import check_scoring, iter_input, stream_results
from facegender.runtime.rows import error_row, face_rows

FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json"}
LISTINGS = (".txt", ".parquet")  # an input with one of these suffixes is a listing of photo paths, one a line/row
PHOTOS_PER_TASK = 256  # one actor call: what the replacement of a killed worker redoes
ROWS_PER_SHARD = 50_000
ROWS_PER_GROUP = 65_536  # row groups of the merged Parquet output
SHOWN_ERRORS = 20  # unreadable photos named on stderr; the rest are in the output's error column


def _schemas() -> tuple[Any, Any]:
    """Arrow schemas of the path rows and the result rows. Explicit, so that a block of only error rows (all-null
    face_index, box, p_male) has the same column types as any other."""
    import pyarrow as pa

    # seq: the photo's place in the input order; path as bytes: a Linux file name need not be UTF-8
    paths = pa.schema([("seq", pa.int64()), ("path", pa.binary()), ("problem", pa.string())])
    rows = pa.schema([
        ("file", pa.string()), ("face_index", pa.int64()), ("box", pa.list_(pa.int64())), ("face_score", pa.float64()),
        ("label", pa.string()), ("p_male", pa.float64()), ("threshold", pa.float64()), ("error", pa.string()),
        ("seq", pa.int64()),
    ])  # fmt: skip
    return paths, rows


def expand_inputs(batch: Any, cwd: str) -> Iterator[Any]:
    """Ray task: all the inputs (one call) -> path rows numbered 0, 1, 2... in order, a chunk at a time: a folder is
    walked and a listing read as they go, never listed whole."""
    import pyarrow as pa

    _enter(cwd)
    schema = _schemas()[0]
    seq = 0
    paths: list[bytes] = []
    problems: list[str | None] = []
    for raw, kind, column in zip(*(batch.column(name).to_pylist() for name in ("input", "kind", "column")),
                                 strict=True):  # fmt: skip
        for path, problem in _expand(raw, kind, column):
            paths.append(path)
            problems.append(problem)
            if len(paths) >= 10_000:
                yield pa.table([range(seq, seq + len(paths)), paths, problems], schema=schema)
                seq += len(paths)
                paths, problems = [], []
    if paths:
        yield pa.table([range(seq, seq + len(paths)), paths, problems], schema=schema)


def _expand(raw: bytes, kind: str, column: str | None) -> Iterator[tuple[bytes, str | None]]:
    """(path, None) for each photo one input names, or (input, why not) for an input that names none."""
    if kind == "text":  # a path a line; blank lines skipped, a listing written on Windows read as well
        with open(raw, "rb") as handle:
            for line in handle:
                name = line.rstrip(b"\r\n")
                if name.strip():
                    yield name, None
    elif kind == "parquet":
        import pyarrow.parquet as pq

        for part in pq.ParquetFile(os.fsdecode(raw)).iter_batches(batch_size=10_000, columns=[column]):
            for name in part.column(0).to_pylist():
                if name:
                    yield (os.fsencode(name) if isinstance(name, str) else name), None
    else:
        for found in iter_input(os.fsdecode(raw)):
            if isinstance(found, dict):  # names no file: its error row's message
                yield raw, found["error"]
            else:
                yield os.fsencode(str(found)), None


class Predictor:
    """One Ray actor: its own classifier and face detector sessions (`threads` intra-op threads each, one inter-op
    thread), made once; each call turns a block of path rows into result rows."""

    def __init__(
        self,
        model: str | None,
        threshold: float,
        abstain: tuple[float, float] | None,
        batch_size: int,
        detect: str,
        min_face_score: float | None,
        threads: int,
        cwd: str,
    ):
        _enter(cwd)
        self.classifier = Classifier.load(model, threads)
        self.detector = None
        if detect != "off":
            self.detector = FaceDetector(MIN_SCORE if min_face_score is None else min_face_score, threads=threads)
        self.threshold, self.abstain, self.batch_size = threshold, abstain, batch_size
        self.detect, self.min_face_score, self.threads = detect, min_face_score, threads

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        numbers = batch.column("seq").to_pylist()
        names = [os.fsdecode(raw) for raw in batch.column("path").to_pylist()]
        problems = batch.column("problem").to_pylist()
        todo = [Path(name) for name, problem in zip(names, problems, strict=True) if problem is None]
        results = iter(
            self.classifier.predict_faces(
                todo, self.batch_size, workers=2 * self.threads, detect=self.detect,
                min_face_score=self.min_face_score, detector=self.detector,
            )
        )  # fmt: skip
        rows: list[dict[str, Any]] = []
        for seq, name, problem in zip(numbers, names, problems, strict=True):
            if problem is not None:
                photo = [error_row(name, problem, self.threshold)]
            else:
                index, result = next(results)
                if isinstance(result, ImageError):
                    photo = [error_row(str(todo[index]), result.reason, self.threshold)]
                else:
                    photo = face_rows(str(todo[index]), result, self.threshold, self.abstain)
            rows.extend(dict(row, seq=seq) for row in photo)
        for row in rows:  # a message quoting a name that is not UTF-8 cannot go into an Arrow string
            if row["error"] is not None:
                row["error"] = row["error"].encode("utf-8", "backslashreplace").decode("utf-8")
        return pa.Table.from_pylist(rows, schema=_schemas()[1])


def _enter(cwd: str) -> None:
    """Work from the driver's current folder, where it exists (a shared filesystem), so relative paths and the
    names in the rows are those the user gave."""
    if os.path.isdir(cwd):
        os.chdir(cwd)


@dataclass
class Summary:
    """What a run did: photos (a row with face_index 0, None), faces, unreadable inputs, the first few named."""

    output: Path
    photos: int = 0
    faces: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_errors: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        rate = self.photos / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.photos} photos, {self.faces} faces, {self.errors} errors, {rate:.1f} photos/s "
                f"-> {display_name(self.output)}")  # fmt: skip


def predict_to_file(
    inputs: list[str],
    output: str | Path,
    model: str | Path | None = None,
    threshold: float | None = None,
    batch_size: int = 32,
    abstain: tuple[float, float] | None = None,
    detect: str = "auto",
    min_face_score: float | None = None,
    workers: int | None = None,
    worker_threads: int = 1,
    address: str | None = None,
    photos_per_task: int | None = None,
) -> Summary:
    """Predict every photo the inputs name on Ray and write the rows to `output` (.parquet, .csv or .json: the
    format is its suffix; CSV and JSON exactly as `facegender predict --format` writes them).

    inputs are files, folders, globs, or listings of photo paths: a .txt file (a path a line) or a .parquet file
    (its `file` or `path` column, or its only column). `workers` actors (default: the cluster's CPUs divided by
    `worker_threads`) run ONNX Runtime with `worker_threads` intra-op threads each. Without `address` a local Ray
    cluster is started and stopped; with one, that cluster is joined; a Ray already initialised in this process
    is used as it is. `photos_per_task` (default PHOTOS_PER_TASK) photos make one actor call: the most a killed
    worker's replacement redoes.
    """
    output, fmt = _check_output(output)
    ray = require_ray()
    if any(item == "" for item in inputs):
        raise FaceGenderError("an input is an empty name (an unset shell variable?); name a file, folder, glob or "
                              "listing")  # fmt: skip
    check_scoring(threshold, detect, min_face_score)
    if batch_size < 1:
        raise InvalidOption("batch_size", "must be >= 1", batch_size)
    if worker_threads < 1:
        raise InvalidOption("worker_threads", "must be >= 1", worker_threads)
    if workers is not None and workers < 1:
        raise InvalidOption("workers", "must be >= 1", workers)
    classifier = Classifier.load(model)  # a wrong model is a usage error here, not in every worker
    if classifier.backend != "onnxruntime":
        shown = display_name(classifier.path)
        raise FaceGenderError(f"--engine ray runs ONNX models; export {shown} first (facegender export --model "
                              f"{shown} --out model.onnx)")  # fmt: skip
    cut = classifier.info.threshold if threshold is None else threshold
    for item in inputs:  # e.g. a Parquet listing named as the output too: it would be replaced by the results
        if os.path.realpath(item) == str(output):
            raise OptionError(
                "{output} {file} is one of the inputs; name a new file for the rows", file=display_name(item)
            )
    sources = _sources(inputs)
    photos_per_task = photos_per_task or PHOTOS_PER_TASK
    started = connect(ray, address)
    staging = output.parent / f".{output.name}.shards-{secrets.token_hex(4)}"
    try:
        begun = time.monotonic()
        cwd = os.getcwd()
        dataset = _paths(ray, sources, cwd).repartition(target_num_rows_per_block=photos_per_task)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        count = workers or max(1, int(cpus) // worker_threads)
        # Ray's accounting, not a limit: actors holding every CPU would leave none for the tasks that list,
        # walk and write (each asks for one), and the run would wait forever. So one stays free for them.
        actor_cpus = min(float(worker_threads), max(0.0, cpus - 1.0) / count)
        model_path = None if model is None else os.path.abspath(classifier.path)  # None: each node's bundled model
        results = dataset.map_batches(
            Predictor, batch_format="pyarrow", batch_size=photos_per_task, num_cpus=actor_cpus,
            compute=ray.data.ActorPoolStrategy(size=count),  # Ray restarts a dead actor and retries its tasks
            fn_constructor_kwargs={"model": model_path, "threshold": cut, "abstain": abstain,
                                   "batch_size": batch_size, "detect": detect, "min_face_score": min_face_score,
                                   "threads": worker_threads, "cwd": cwd},
        )  # fmt: skip
        _run(results.write_parquet, str(staging), filename_provider=_shard_names(), min_rows_per_file=ROWS_PER_SHARD)
        summary = _merge(staging, fmt, output)
        summary.seconds = time.monotonic() - begun
        return summary
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if started:
            ray.shutdown()


def _check_output(output: str | Path) -> tuple[Path, str]:
    """The output file and its format, refused before any work when it cannot be one."""
    if str(output) == "":
        raise OptionError("{output} is an empty name (an unset shell variable?); name a file for the results")
    path = Path(output)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OptionError(
            "--engine ray writes {output} as .parquet, .csv or .json (by its suffix), got {file}",
            file=display_name(path),
        )
    if is_stream(path) or path.is_dir():
        raise OptionError(
            "--engine ray writes {output} as a new file, renamed into place when complete; {file} is "
            "not a regular file",
            file=display_name(path),
        )
    path = Path(os.path.realpath(path))  # a link: its target is replaced
    ensure_writable(path.parent, "output")
    return path, fmt


def _sources(inputs: list[str]) -> list[dict[str, Any]]:
    """The inputs as rows for expand_inputs: kind 'input' (a file, folder or glob), 'text' or 'parquet' (a listing
    of photo paths, with the column to read)."""
    sources = []
    for item in inputs:
        path = Path(item)
        suffix = path.suffix.lower()
        kind = suffix[1:] if suffix in LISTINGS and path.is_file() else "input"
        kind = "text" if kind == "txt" else kind
        column = _listing_column(path) if kind == "parquet" else None
        raw = os.fsencode(os.path.abspath(item) if kind != "input" else item)
        sources.append({"input": raw, "kind": kind, "column": column})
    return sources


def _listing_column(path: Path) -> str:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:
        raise FaceGenderError(f"cannot read the Parquet listing {display_name(path)}: {exc}") from None
    for name in ("file", "path"):
        if name in names:
            return name
    if len(names) == 1:
        return names[0]
    raise FaceGenderError(f"the Parquet listing {display_name(path)} has no 'file' or 'path' column (it has "
                          f"{', '.join(names)}); name the column of photo paths one of those")  # fmt: skip


def _paths(ray: Any, sources: list[dict[str, Any]], cwd: str) -> Any:
    """One dataset of path rows (path, problem) for all the inputs, in their order. One dataset, not a union of
    a dataset per listing: Ray Data's union does not keep the order of its inputs' blocks."""
    import pyarrow as pa

    items = ray.data.from_arrow(pa.Table.from_pylist(sources, schema=pa.schema(
        [("input", pa.binary()), ("kind", pa.string()), ("column", pa.string())])))  # fmt: skip
    # one block, one call (batch_size None): the numbering runs through every input
    return items.map_batches(expand_inputs, batch_format="pyarrow", batch_size=None, fn_kwargs={"cwd": cwd})


def _shard_names() -> Any:
    """Shard files named by their write task's index first (readable names; the merge orders rows by seq)."""
    from ray.data.datasource import FilenameProvider

    class ShardNames(FilenameProvider):
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"{task_index:09d}_{write_uuid}"

    return ShardNames()


def _run(write: Any, *args: Any, **kwargs: Any) -> None:
    """Run the pipeline; a failure as one line. preserve_order keeps the shards nearly in input order, so the merge
    reads them front to back; only the blocks of a retried task land elsewhere, and the merge reorders those."""
    from ray.data import DataContext

    context = DataContext.get_current()
    previous = context.execution_options.preserve_order
    context.execution_options.preserve_order = True
    try:
        write(*args, **kwargs)
    except (FaceGenderError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise FaceGenderError(f"the Ray job failed: {failure_reason(exc)}") from None
    finally:
        context.execution_options.preserve_order = previous


def _natural(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _merge(staging: Path, fmt: str, output: Path) -> Summary:
    """Write the shards' rows in input order (seq) into one file of `fmt` beside the output, then rename it into
    place, counting as it goes. Streams: an index of runs (rows of consecutive seq, a few per block) and one row
    group in memory, however many rows there are."""
    import pyarrow.parquet as pq

    summary = Summary(output)
    merged = staging / f"merged.{fmt}"
    batches = (_count(summary, batch) for batch in _in_order(sorted(staging.glob("*.parquet"), key=_natural)))
    if fmt == "parquet":
        import pyarrow as pa

        schema = _schemas()[1]
        with pq.ParquetWriter(merged, schema.remove(schema.get_field_index("seq"))) as writer:
            pending: list[Any] = []  # runs gathered into row groups of ROWS_PER_GROUP: a row group per run (a few
            for batch in batches:  # hundred rows) would bloat the file, and the writer's metadata in memory
                pending.append(batch)
                if sum(len(t) for t in pending) >= ROWS_PER_GROUP:
                    writer.write_table(pa.concat_tables(pending))
                    pending = []
            if pending:
                writer.write_table(pa.concat_tables(pending))
    else:
        rows = (row for batch in batches for row in batch.to_pylist())
        with merged.open("w", encoding="utf-8", newline="") as handle:
            for piece in stream_results(rows, fmt):
                handle.write(piece)
            if fmt == "json":  # as `predict --output` ends its file; the CSV's last line already ends
                handle.write("\n")
    os.replace(merged, output)
    return summary


def _in_order(shards: list[Path]) -> Iterator[Any]:
    """The rows of every shard as tables ordered by seq, without seq. A block's rows are consecutive in seq, so
    the shards are cut into runs, and the runs are read in order of their first seq."""
    import numpy as np
    import pyarrow.parquet as pq

    runs = []  # (first seq, last seq, shard, row group, offset, length)
    for shard_index, shard in enumerate(shards):
        parquet = pq.ParquetFile(shard)
        for group in range(parquet.num_row_groups):
            seq = parquet.read_row_group(group, columns=["seq"]).column("seq").to_numpy()
            step = np.diff(seq)  # 0: the same photo's next face, 1: the next photo, else another block begins
            cuts = sorted({0, *(np.flatnonzero((step != 0) & (step != 1)) + 1).tolist(), len(seq)})
            for start, end in itertools.pairwise(cuts):
                runs.append((int(seq[start]), int(seq[end - 1]), shard_index, group, start, end - start))
    runs.sort()
    cached: tuple[Any, Any] = (None, None)  # ((shard, row group), its table): only the one being read
    last = -1
    for first, final, shard_index, group, start, length in runs:
        if first != last + 1:  # a block written twice, or one lost: never write such a result
            raise FaceGenderError(f"the shards hold photo #{first} after #{last}: rows lost or repeated; run again")
        last = final
        if cached[0] != (shard_index, group):
            cached = (None, None)  # let the last one go before reading the next
            cached = ((shard_index, group), pq.ParquetFile(shards[shard_index]).read_row_group(group))
        part = cached[1].slice(start, length).drop_columns(["seq"])
        # a copy (take) where the run is part of a row group: a zero-copy slice would keep the whole group alive
        yield part if length == len(cached[1]) else part.take(np.arange(length))


def _count(summary: Summary, table: Any) -> Any:
    """Add a table of rows to the summary: photos (face_index 0 or none), faces, errors and the first few named."""
    import pyarrow.compute as pc

    face = table.column("face_index")
    summary.photos += pc.sum(pc.fill_null(pc.equal(face, 0), True)).as_py() or 0
    summary.faces += len(face) - face.null_count
    failed = pc.equal(table.column("label"), "error")
    errors = pc.sum(failed).as_py() or 0
    summary.errors += errors
    room = SHOWN_ERRORS - len(summary.first_errors)
    if errors and room > 0:
        rows = table.filter(failed).slice(0, room).select(["file", "error"]).to_pylist()
        summary.first_errors.extend((row["file"], row["error"]) for row in rows)
    return table
