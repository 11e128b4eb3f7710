"""The estimators take their executor and their budget defaults from above and from themselves."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from onnxshap.estimators import ESTIMATORS, ParameterError, estimate
from onnxshap.estimators.executor import LocalExecutor
from onnxshap.games import FewHubsGame

ESTIMATORS_DIR = Path(__file__).resolve().parents[2] / "onnxshap" / "estimators"


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports in functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_estimators_never_import_a_backend() -> None:
    files = sorted(ESTIMATORS_DIR.glob("*.py"))
    assert len(files) > 10
    for path in files:
        reach_up = {
            m for m in _imported_modules(path) if m.startswith(("onnxshap.distributed", "onnxshap.backends"))
        }
        assert not reach_up, f"{path.name} imports {reach_up}"


def test_local_estimate_loads_no_backend_module() -> None:
    code = textwrap.dedent(
        """
        import sys
        from onnxshap.estimators import estimate
        from onnxshap.games import FewHubsGame
        estimate(FewHubsGame.make(n_players=6, n_hubs=2, n_items=20, seed=0), "permutation", progress=False)
        print(sorted(m for m in sys.modules if m.startswith(("onnxshap.distributed", "onnxshap.backends"))))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_budgets_come_from_the_estimator_class() -> None:
    assert ESTIMATORS["tmab"].default_budget(7) == 700
    for name in ("exact", "loo", "permutation", "truncated"):
        assert ESTIMATORS[name].default_budget(7) is None
    perm = ESTIMATORS["permutation"]
    assert perm.budget_params({}, None, None) == {"n_permutations": 100}
    assert perm.budget_params({}, 50, None) == {} and perm.budget_params({}, None, 1.0) == {}
    assert perm.budget_params({"n_permutations": 3}, None, None) == {"n_permutations": 3}
    assert ESTIMATORS["tmab"].budget_params({}, None, None) == {}
    game = FewHubsGame.make(n_players=6, n_hubs=2, n_items=20, seed=0)
    assert estimate(game, "permutation", progress=False).metadata["params"]["n_permutations"] == 100


class _NamedExecutor(LocalExecutor):
    name = "elsewhere"


def test_executor_is_handed_in_at_construction() -> None:
    game = FewHubsGame.make(n_players=6, n_hubs=2, n_items=20, seed=0)
    local = estimate(game, "permutation", n_permutations=8, progress=False)
    handed = estimate(game, "permutation", n_permutations=8, progress=False, executor=_NamedExecutor())
    assert handed.values.tolist() == local.values.tolist() and handed.metadata["backend"] == "elsewhere"
    with pytest.raises(ParameterError, match="method='exact' runs with backend='local'"):
        estimate(game, "exact", progress=False, executor=_NamedExecutor())
    with pytest.raises(ParameterError, match="executor must be a round executor"):
        estimate(game, "permutation", progress=False, executor=object())
    with pytest.raises(ParameterError, match="exact needs 66 evaluations for 6 players"):
        estimate(game, "exact", max_evals=10, progress=False)
