"""Seed-compatible single-image prediction: a thin wrapper over `facegender predict`.

python predict.py --image_path IMG --model_path MODEL
"""

import argparse
import sys

from facegender.cli import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_path", required=True, help="image file (or folder, or glob)")
    parser.add_argument("--model_path", help="run folder or .onnx/.keras/.h5 model (default: the bundled model)")
    args = parser.parse_args()
    argv = ["predict", args.image_path] + (["--model", args.model_path] if args.model_path else [])
    sys.exit(main(argv))
