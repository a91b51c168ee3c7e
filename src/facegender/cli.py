"""The `facegender` command: train, evaluate, predict, export.

Exit codes: 0 success; 1 some inputs could not be read (the rest were still processed);
2 usage, data, model or path errors (a one-line message, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from facegender import __version__
from facegender.errors import FaceGenderError, OptionError
from facegender.training.tf_import import VERBOSE_VARIABLE


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; every option that has a default says it, unless its help already does."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" not in text and action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with usage, as argparse does, but one clear line
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _seed(text: str) -> int:
    """A seed for numpy's generators, which take only non-negative integers."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facegender", description="Face gender classification that holds up in bad conditions.")
    parser.add_argument("--version", action="version", version=f"facegender {__version__}")
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own start-up lines and warnings (hidden by default)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, summary: str, *examples: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".",
            epilog=_examples(*examples), formatter_class=_HelpFormatter,
        )  # fmt: skip

    t = command(
        "train",
        "train a model and write a run folder (model, metadata, history, plots, validation report)",
        "facegender train --data photos/ --val photos-val/",
        "facegender train --preset seed --data ../shared/data/lfw-adverse/train --val ../shared/data/lfw-adverse/val",
        "facegender train --data small-set/ --backbone-weights face   # start from faces, not ImageNet",
        "facegender train --resume runs/train",
        "facegender train --data photos/ --val photos-val/ --workers 2   # on Ray Train (facegender[distributed])",
    )
    t.add_argument(
        "--data",
        nargs="+",
        help="dataset folder (male/, female/), a folder holding train/ and val/, or several dataset folders",
    )
    t.add_argument(
        "--val",
        nargs="+",
        help="validation dataset folder(s); several are combined for early stopping, threshold and temperature and "
        "reported each on its own (default: data/val, else a split of --data)",
    )
    t.add_argument(
        "--preset", help="configuration preset: seed or default (default: the --config file's, else default)"
    )
    t.add_argument("--config", help="YAML or JSON file of config fields (flags override it)")
    t.add_argument("--epochs", type=int, help="fine-tuning epochs (default: the preset's)")
    t.add_argument("--batch-size", type=int, dest="batch_size", help="photos per step (default: the preset's, 32)")
    t.add_argument(
        "--image-size", type=int, dest="image_size", help="network input side in pixels (default: the preset's)"
    )
    t.add_argument(
        "--backbone-weights",
        dest="backbone_weights",
        help="imagenet (default), face (the bundled model's backbone, pretrained on faces), none, or a weights file",
    )
    t.add_argument("--seed", type=int, help="random seed: a run is reproducible for a seed (default: 42)")
    t.add_argument(
        "--face-crops",
        action="store_true",
        default=None,
        dest="face_crops",
        help="frame each photo around its detected face, as predict frames faces in other photos",
    )
    t.add_argument("--out", help="run folder to write (default: runs/train, runs/train2, ...)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last completed epoch")
    t.add_argument(
        "--workers",
        type=int,
        help="train with this many workers on a Ray cluster (Ray Train, MultiWorkerMirroredStrategy; --batch-size "
        "is the global batch); default: one process, no Ray",
    )
    t.add_argument(
        "--ray-address",
        metavar="ADDR",
        dest="ray_address",
        help="with --workers: join the Ray cluster at ADDR (default: start one on this machine for the run)",
    )

    e = command(
        "evaluate",
        "evaluate a model on a labelled folder: metrics, slices, plots, misclassified photos, an HTML report",
        "facegender evaluate --data ../shared/data/utkface/val",
        "facegender evaluate --data val/ --model runs/train --out report/ --corrupt",
    )
    e.add_argument("--data", required=True, help="dataset folder with male/ and female/ (optional labels.csv)")
    e.add_argument("--model", help="run folder or .onnx/.tflite/.keras/.h5 file (default: the bundled model)")
    e.add_argument("--out", default="evaluation_results", help="folder for the report files")
    e.add_argument("--threshold", type=float, help="threshold on p(male) (default: the model's own)")
    e.add_argument(
        "--corrupt",
        action="store_true",
        help="also run the robustness suite: the clean photos under 9 adverse conditions x 3 severities",
    )
    e.add_argument("--corrupt-seed", type=_seed, default=0, dest="corrupt_seed", help="seed of the robustness suite")

    p = command(
        "predict",
        "find the faces in images, folders or globs and label each one",
        "facegender predict examples/grace_hopper.jpg",
        'facegender predict photos/ "more/*.png" --format json --output results.json',
        "facegender predict group.jpg --annotate annotated/",
        "facegender predict photos/ paths.txt --engine ray --output results.parquet",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="image file, folder (recursive) or glob; with --engine ray also a listing of photo paths "
        "(.txt, a path a line, or .parquet, its file or path column)",
    )  # fmt: skip
    p.add_argument("--model", help="run folder or .onnx/.tflite/.keras/.h5 file (default: the bundled model)")
    p.add_argument(
        "--format", choices=("table", "json", "csv"),
        help="how results are written (default: table; with --engine ray, the --output suffix)",
    )  # fmt: skip
    p.add_argument("--output", help="write the results to this file instead of standard output")
    p.add_argument("--threshold", type=float, help="threshold on p(male) (default: the model's own)")
    p.add_argument("--batch-size", type=int, default=32, dest="batch_size", help="faces per network call")
    p.add_argument(
        "--abstain-band",
        dest="abstain_band",
        metavar="LOW,HIGH",
        help="label 'uncertain' when p(male) falls strictly between LOW and HIGH, e.g. 0.35,0.65",
    )
    p.add_argument(
        "--detect",
        choices=("auto", "on", "off"),
        default="auto",
        help="find faces first: 'auto' (default) treats a photo that is already a face crop as one face and finds "
        "every face in other photos; 'on' always finds faces; 'off' treats each photo as one face crop",
    )
    p.add_argument("--no-detect", dest="detect", action="store_const", const="off", help="same as --detect off")
    p.add_argument(
        "--min-face-score",
        type=float,
        dest="min_face_score",
        help="face detector confidence needed to report a face (default 0.7, chosen by benchmarks/face_or_not.py; "
        "a face found only on the contrast-stretched or blurred second look needs 0.05 more)",
    )
    p.add_argument("--annotate", metavar="DIR", help="write copies of the photos with boxes and labels drawn into DIR")
    p.add_argument(
        "--engine", choices=("local", "ray"), default="local",
        help="'local' predicts in this process; 'ray' on a Ray cluster, written to --output as .parquet, .csv or "
        "json (pip install 'facegender[distributed]'; docs/distributed.md)",
    )  # fmt: skip
    p.add_argument(
        "--ray-address", dest="ray_address", metavar="ADDR",
        help="join the Ray cluster at ADDR (e.g. 10.0.0.5:6379) instead of starting one on this machine",
    )  # fmt: skip
    p.add_argument("--workers", type=int, help="Ray actors predicting at once (default: the cluster's CPUs)")
    p.add_argument(
        "--worker-threads", type=int, dest="worker_threads", help="ONNX Runtime threads per Ray actor (default 1)"
    )

    x = command(
        "export",
        "export a trained model to ONNX or LiteRT (TFLite), its metadata inside",
        "facegender export --model runs/train --format tflite --out model.tflite",
        "facegender export --model runs/train --format tflite-int8 --out model-int8.tflite --samples 300",
    )
    x.add_argument("--model", required=True, help="run folder or .keras/.h5 file")
    x.add_argument("--format", choices=("onnx", "tflite", "tflite-int8"), default="onnx", help="what to write")
    x.add_argument("--out", required=True, help="output file, e.g. model.onnx or model.tflite")
    x.add_argument("--data", help="training images for tflite-int8 calibration (default: the run's training data)")
    x.add_argument("--samples", type=int, default=200, help="calibration images for tflite-int8")
    v = command(
        "serve",
        "serve the model over HTTP: a JSON API, its docs at /docs, and a drop-a-photo page at /",
        "facegender serve",
        "facegender serve --model runs/train/model.onnx --host 0.0.0.0 --port 8080 --workers 4",
    )
    v.add_argument("--model", help="run folder or .onnx/.tflite file (default: the bundled model)")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port, printed)")
    v.add_argument("--workers", type=int, default=2, help="inference threads")
    v.add_argument("--max-upload-mb", type=float, default=10.0, dest="max_upload_mb", help="largest upload accepted")
    v.add_argument("--max-batch", type=int, default=16, dest="max_batch", help="files per /predict/batch request")
    return parser


def _serve(args: argparse.Namespace) -> int:
    _require("serve", "fastapi", "uvicorn", "multipart", "fastapi_offline")
    from facegender.serve.app import run

    if args.workers < 1 or args.max_batch < 1 or not 0 < args.max_upload_mb <= 1e6:
        raise FaceGenderError(
            "--workers and --max-batch must be >= 1 and --max-upload-mb a number above 0, at most 1000000"
        )
    run(args.model, args.host, args.port, args.workers, args.max_upload_mb, args.max_batch)
    return 0


def _train(args: argparse.Namespace) -> int:
    _require("train", "tensorflow", "keras", "sklearn", "matplotlib", "albumentations")
    from facegender import config as cfg

    flags = ("epochs", "batch_size", "image_size", "backbone_weights", "seed", "face_crops")
    if args.ray_address is not None and args.workers is None:
        raise FaceGenderError("--ray-address trains on Ray workers: add --workers N")
    if args.resume is not None:
        given = [name for name in ("data", "val", "preset", "config", "out", *flags) if getattr(args, name) is not None]
        if given:
            raise FaceGenderError(
                f"--resume continues a run with the data and config it started with; drop "
                f"{', '.join('--' + name.replace('_', '-') for name in given)} (or start a new run without --resume)"
            )
        if not args.resume:
            raise FaceGenderError("--resume needs a run folder, got an empty name (an unset shell variable?)")
        if args.workers is not None:
            from facegender.distributed.train import train_on_ray

            return _trained(_interruptible(args.resume, train_on_ray, None, None, None, args.resume, args.workers,
                                           args.ray_address))  # fmt: skip
        from facegender.training.train import resume

        return _trained(_interruptible(args.resume, resume, args.resume))
    if not args.data:
        raise FaceGenderError("train needs --data DIR (or --resume RUN_DIR)")
    if args.out == "":
        raise FaceGenderError("--out is an empty name (an unset shell variable?); name the run folder")

    config = cfg.from_sources(args.preset, args.config, {name: getattr(args, name) for name in flags})

    from facegender.training.train import next_run_dir, train

    out = Path(args.out) if args.out else next_run_dir()
    if (out / "model.keras").is_file():
        raise FaceGenderError(f"{out} holds a finished run (model.keras); choose another --out or delete it first")
    if args.workers is not None:
        from facegender.distributed.train import train_on_ray

        return _trained(_interruptible(out, train_on_ray, config, args.data, args.val, out, args.workers,
                                       args.ray_address))  # fmt: skip
    return _trained(_interruptible(out, train, config, args.data, args.val, out))


def _trained(run_dir: Path) -> int:
    """Print the run folder; exit 1 when some photos could not be read (named while loading, listed in
    model.json), as every command does for unreadable inputs."""
    import json

    print(run_dir)
    skipped = json.loads((run_dir / "model.json").read_text(encoding="utf-8"))["training"]["skipped"]
    return 1 if skipped else 0


def _interruptible(run_dir: str | Path, function: Any, *args: Any) -> Any:
    """Run training so that Ctrl-C or SIGTERM stop it cleanly, naming the command that resumes it."""
    import signal

    from facegender.training.train import STOP_REQUESTED

    def on_signal(signum: int, frame: Any) -> None:
        STOP_REQUESTED.set()  # training also stops at its next batch if this exception gets lost
        raise KeyboardInterrupt

    STOP_REQUESTED.clear()  # a run interrupted earlier in this process must not stop this one
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return function(*args)
    except KeyboardInterrupt:
        print(
            f"interrupted: the last completed epoch is saved in {run_dir}/checkpoint; "
            f"continue with: facegender train --resume {run_dir}",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _sigterm_as_interrupt() -> None:
    """SIGTERM (kill, a container stopping) stops the command as Ctrl-C does: exit 130, no partial output file."""
    import signal

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)


def _require(extra: str, *modules: str) -> None:
    """A clear message, not an ImportError, when a command's optional dependencies are not installed."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise FaceGenderError(
            f"this command needs {', '.join(missing)}: install it with pip install 'facegender[{extra}]'"
        )


def _evaluate(args: argparse.Namespace) -> int:
    _require("eval", "sklearn", "matplotlib", *(["albumentations"] if args.corrupt else []))
    from facegender.evaluation.evaluate import evaluate

    result = evaluate(
        args.data, args.out, args.model, args.threshold, corrupt=args.corrupt, corrupt_seed=args.corrupt_seed
    )
    per_class = result["per_class"]
    print(
        f"accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}  "
        f"female P/R {per_class['female']['precision']:.3f}/{per_class['female']['recall']:.3f}  "
        f"threshold {result['threshold']:.3f}  n {result['n']}  -> {args.out}"
    )
    if result.get("worst_slice"):
        w = result["worst_slice"]
        print(f"worst slice: {w['column']}={w['value']} accuracy {w['accuracy']:.4f} (n {w['n']})")
    if result.get("no_face", {}).get("count"):
        print(f"no face found in {result['no_face']['count']} photo(s): scored on the whole photo (see metrics.json)")
    if result.get("robustness"):
        from facegender.evaluation.corrupt import robustness_table

        print(robustness_table(result["robustness"]))
    for skipped in result["skipped"]:
        print(f"skipped {skipped['file']}: {skipped['error']}", file=sys.stderr)
    if result["skipped"]:
        print(f"skipped {len(result['skipped'])} unreadable image(s): see metrics.json", file=sys.stderr)
        return 1
    return 0


def _predict(args: argparse.Namespace) -> int:
    from facegender.runtime.predict import format_results, predict
    from facegender.runtime.rows import parse_band

    if args.batch_size < 1:
        raise FaceGenderError("--batch-size must be >= 1")
    if args.engine == "ray":
        return _predict_ray(args)
    given = [flag for flag, value in (("--ray-address", args.ray_address), ("--workers", args.workers),
                                      ("--worker-threads", args.worker_threads)) if value is not None]  # fmt: skip
    if given:
        raise FaceGenderError(f"{', '.join(given)} run Ray workers: add --engine ray")
    args.format = args.format or "table"
    rows = list(
        predict(
            args.inputs, args.model, args.threshold, args.batch_size, parse_band(args.abstain_band),
            args.detect, args.min_face_score, args.annotate, args.output,
        )
    )  # fmt: skip
    text = format_results(rows, args.format)
    if args.output is not None:
        from facegender.files import atomic_write_bytes

        try:
            atomic_write_bytes(Path(args.output), (text + "\n").encode("utf-8"))
        except OSError as exc:
            raise FaceGenderError(f"cannot write {args.output}: {exc}") from exc
    else:
        try:
            print(text, flush=True)
        except BrokenPipeError:  # e.g. `facegender predict ... | head`: the reader has gone, not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError as exc:
            raise FaceGenderError(f"could not write the results to standard output: {exc.strerror or exc}") from None
    errors = [r for r in rows if r["label"] == "error"]
    for row in errors:
        print(f"could not read {row['file']}: {row['error']}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} of {len(rows)} input(s) could not be read", file=sys.stderr)
    return 1 if errors else 0


def _predict_ray(args: argparse.Namespace) -> int:
    """--engine ray: the rows go to --output, a summary line to standard output, the first unreadable photos to
    standard error."""
    from facegender.runtime.rows import parse_band

    if args.annotate is not None:
        raise FaceGenderError("--annotate runs with --engine local only; drop it, or predict those photos locally")
    if args.output is None:
        raise FaceGenderError("--engine ray writes its results to a file: add --output results.parquet (or .csv, "
                              ".json)")  # fmt: skip
    suffix = Path(args.output).suffix.lower().lstrip(".")
    if args.format is not None and args.format != suffix:
        raise FaceGenderError(f"--engine ray writes the format of the --output suffix (.{suffix}), not "
                              f"--format {args.format}; drop --format or name the file .{args.format}")  # fmt: skip
    from facegender.distributed.predict import predict_to_file

    summary = predict_to_file(
        args.inputs, args.output, args.model, args.threshold, args.batch_size, parse_band(args.abstain_band),
        args.detect, args.min_face_score, args.workers, args.worker_threads or 1, args.ray_address,
    )  # fmt: skip
    for file, error in summary.first_errors:
        print(f"could not read {file}: {error}", file=sys.stderr)
    if summary.errors > len(summary.first_errors):
        print(f"... and {summary.errors - len(summary.first_errors)} more: see the error column of {args.output}",
              file=sys.stderr)  # fmt: skip
    print(summary.line(), flush=True)
    return 1 if summary.errors else 0


def _export(args: argparse.Namespace) -> int:
    _require("train", "tensorflow", "keras", "tf2onnx", "onnx")

    from facegender.training.export import export_run

    print(export_run(Path(args.model), Path(args.out), args.format, args.data, args.samples))
    return 0


def flag(parameter: str) -> str:
    """The command-line flag of a library parameter: out_dir -> --out-dir."""
    return "--" + parameter.replace("_", "-")


COMMANDS = {"train": _train, "evaluate": _evaluate, "predict": _predict, "export": _export, "serve": _serve}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:  # TensorFlow's own log lines and warnings, for debugging an install
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        os.environ[VERBOSE_VARIABLE] = "1"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up chatter out of the output
    if args.command in ("predict", "evaluate", "export"):  # train has its own handler, serve uvicorn's
        _sigterm_as_interrupt()
    try:
        return COMMANDS[args.command](args)
    except OptionError as exc:  # the library names its parameters; the CLI words them as its flags
        print(f"error: {exc.worded(flag)}", file=sys.stderr)
        return 2
    except FaceGenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
