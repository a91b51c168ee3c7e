"""Seed-compatible training script: a thin wrapper over `facegender train --preset seed`.

    python train_model.py --data_path DIR --epochs 25 --batch_size 32 --output_model model_new.h5

Writes the model file (legacy HDF5 for .h5, Keras format for .keras), its metadata beside it
(`model_new.json`: threshold, image size, metrics) and the full run folder `model_new_run/`.
"""

import argparse
import shutil
import sys
from pathlib import Path

from facegender.cli import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data_path", required=True, help="dataset folder (male/, female/) or one with train/ and val/"
    )
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--output_model", default="model_new.h5", help="model file to write (.h5 or .keras)")
    parser.add_argument("--image_size", type=int, help="input size (default: the seed's 224)")
    parser.add_argument("--backbone_weights", help="imagenet (default), none, or a weights file path")
    args = parser.parse_args()
    output = Path(args.output_model)
    run_dir = output.with_name(output.stem + "_run")
    argv = [
        "train",
        "--preset",
        "seed",
        "--data",
        args.data_path,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--out",
        str(run_dir),
    ]
    if args.image_size:
        argv += ["--image-size", str(args.image_size)]
    if args.backbone_weights:
        argv += ["--backbone-weights", args.backbone_weights]
    code = main(argv)
    if code == 0:
        if output.suffix == ".keras":
            shutil.copyfile(run_dir / "model.keras", output)
        else:  # legacy HDF5, as the original script wrote
            import keras

            keras.models.load_model(run_dir / "model.keras", compile=False).save(output)
        shutil.copyfile(run_dir / "model.json", output.with_suffix(".json"))
        print(f"model: {output} (metadata and threshold: {output.with_suffix('.json')}; run folder: {run_dir})")
    sys.exit(code)
