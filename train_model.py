"""Seed-compatible training script: a thin wrapper over `facegender train --preset seed`.

    python train_model.py --data_path DIR --epochs 25 --batch_size 32 --output_model model_new.h5
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from facegender.cli import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_path", required=True, help="dataset folder (male/, female/) or one holding train/ and val/")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--output_model", default="model_new.h5", help="model file to write (.h5 or .keras)")
    args = parser.parse_args()
    output = Path(args.output_model)
    run_dir = output.with_name(output.stem + "_run")
    code = main(["train", "--preset", "seed", "--data", args.data_path, "--epochs", str(args.epochs),
                 "--batch-size", str(args.batch_size), "--out", str(run_dir)])
    if code == 0:
        if output.suffix == ".keras":
            shutil.copyfile(run_dir / "model.keras", output)
        else:  # legacy HDF5, as the original script wrote
            import keras

            with tempfile.TemporaryDirectory():
                keras.models.load_model(run_dir / "model.keras", compile=False).save(output)
        shutil.copyfile(run_dir / "model.json", output.with_suffix(".json"))
        print(f"model: {output} (threshold and metadata: {output.with_suffix('.json')}; run folder: {run_dir})")
    sys.exit(code)
