"""Every package folder is declared in pyproject.toml (a forgotten one breaks non-editable installs)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_all_packages_declared():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "onnxshap").rglob("__init__.py")} | {
        "onnxshap_cli"
    }
    assert found <= declared, f"add to pyproject [tool.setuptools] packages: {sorted(found - declared)}"


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    blocks = [line for line in lines[:12] if line.startswith("pip install -e")]
    assert blocks[0].startswith('pip install -e ".[cpu]" && onnxshap ')
    assert blocks[1] == 'pip install -e ".[cpu,dev]" && python -m pytest -q'
