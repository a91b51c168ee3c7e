"""The README's package tree ("How the code is laid out") names exactly the package's folders and top-level
modules, so the map a newcomer reads is the code that is there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "facegender"


def readme_tree() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## How the code is laid out", 1)[1]
    return section.split("```", 2)[1]


def test_the_readme_tree_names_every_folder_and_top_level_module():
    tree = readme_tree()
    named_folders = set(re.findall(r"^  ([a-z_]+)/", tree, flags=re.M))
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert named_folders == folders
    modules = {p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("_")}
    named_modules = set(re.findall(r"\b([a-z_]+\.py)\b", tree.split("faces/", 1)[0]))
    assert named_modules == modules


def test_every_module_the_tree_names_inside_a_folder_exists():
    tree = readme_tree()
    for folder, lines in re.findall(r"^  ([a-z_]+)/(.*?)(?=^  [a-z_]+/|\Z)", tree, flags=re.M | re.S):
        for name in re.findall(r"\b([a-z_]+)\.py\b", lines):
            assert (PACKAGE / folder / f"{name}.py").is_file(), f"{folder}/{name}.py named in the README tree"
