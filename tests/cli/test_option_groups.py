"""`run` and `check` options come in groups: each owns its options, fills its part of the config, has
its own --help section, takes its choices from the library, and defaults to the library's defaults."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
from click.testing import CliRunner

from onnxshap.audit import AuditConfig
from onnxshap.estimators import ESTIMATORS
from onnxshap.estimators.base import BOUNDS
from onnxshap_cli.main import cli
from onnxshap_cli.option_groups import AUDIT_GROUPS, config_from_options

MODEL = Path(__file__).resolve().parents[2] / "models" / "digits_cnn_torch.onnx"


def _defaults() -> dict:
    """The value of every option of every group when the user gives none."""
    command = click.Command("x", params=[])
    for group in AUDIT_GROUPS:
        command.params.extend(group.decorate(lambda **_: None).__click_params__)
    return command.make_context("x", []).params  # as click parses a command line without options


def test_every_option_belongs_to_one_group_and_the_cli_defaults_are_the_library_defaults() -> None:
    names = [g.param_names() for g in AUDIT_GROUPS]
    assert sum(len(n) for n in names) == len(set().union(*names))  # no option in two groups
    opts = _defaults()
    from_cli = asdict(config_from_options(MODEL, Path("out"), False, **opts))
    library = asdict(AuditConfig(model=MODEL, out=Path("out")))
    assert from_cli == library


def test_help_has_a_section_per_group_and_choices_from_the_library() -> None:
    for command in ("run", "check"):
        text = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).output
        for group in AUDIT_GROUPS:
            assert f"\n{group.title}:\n" in text, (command, group.title)
        assert "[" + "|".join(ESTIMATORS) + "]" in text
        assert "[" + "|".join(BOUNDS) + "]" in text
        assert "--checkpoint-seconds" in text


def test_checkpoint_seconds_must_be_positive(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", str(MODEL), "--out", str(out), "--checkpoint-seconds", "0"])
    assert result.exit_code == 2
    assert "--checkpoint-seconds must be a number of seconds > 0" in result.output
    assert not (out / "run.json").exists()
