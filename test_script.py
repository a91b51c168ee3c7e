"""Seed-compatible evaluation script: a thin wrapper over `facegender evaluate`.

python test_script.py --data_path DIR --model_path MODEL --output_dir evaluation_results
"""

import argparse
import sys

from facegender.cli import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_path", required=True, help="labelled folder with male/ and female/")
    parser.add_argument("--model_path", required=True, help="run folder or .onnx/.keras/.h5 model")
    parser.add_argument("--output_dir", default="evaluation_results")
    args = parser.parse_args()
    sys.exit(main(["evaluate", "--data", args.data_path, "--model", args.model_path, "--out", args.output_dir]))
