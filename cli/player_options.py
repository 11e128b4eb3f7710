"""Options of `run` and `check` that say who the players are and what removing one means."""

from __future__ import annotations

from pathlib import Path

import click

REMOVALS = ("zero", "mean")


def player_options(fn):
    """Decorate a command with --players, --removal, --lesion, --lesion-run, --lesion-top."""
    options = [
        click.option(
            "--players",
            default="channels",
            show_default=True,
            help="Who plays: channels (each unit) | layers (each unit layer) | blocks:D (D channels of a "
            "layer, e.g. attention heads) | groups:FILE (JSON/CSV map unit -> group; unlisted units stay on).",
        ),
        click.option(
            "--removal",
            type=click.Choice(REMOVALS),
            default="zero",
            show_default=True,
            help="What a removed unit outputs: zero, or its mean activation over the valuation split.",
        ),
        click.option(
            "--lesion",
            default=None,
            metavar="NAME,...",
            help="Remove these for good and value the rest: player names (as in shapley.csv), unit ids "
            "(LAYER:C, LAYER:A-B) or layers.",
        ),
        click.option(
            "--lesion-run",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="A finished run folder: lesion its top --lesion-top players.",
        ),
        click.option("--lesion-top", type=int, default=None, help="How many top players of --lesion-run."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def apply_player_options(cfg, opts: dict) -> None:
    """Copy the player options from the click options into an AuditConfig."""
    cfg.players = opts["players"]
    cfg.removal = opts["removal"]
    cfg.lesion = [u.strip() for u in (opts["lesion"] or "").split(",") if u.strip()]
    cfg.lesion_run = opts["lesion_run"]
    cfg.lesion_top = opts["lesion_top"]
