"""Markers by place: tests under tests/audit and tests/cli and the README commands run the CLI end to end
(marked ``cli``), so the inner loop can leave them out: ``python -m pytest -q -m "not slow and not cli and
not thirdparty and not ray"``. CI runs everything."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
END_TO_END = (TESTS / "audit", TESTS / "cli", TESTS / "test_readme_commands.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path))
        if any(path == place or place in path.parents for place in END_TO_END):
            item.add_marker(pytest.mark.cli)
