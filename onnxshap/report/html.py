"""The report page: one self-contained HTML file (inline CSS) that references its PNGs as figures/NAME.png."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.report.figures import hub_share, layer_counts, scalar
from onnxshap.report.pictures import Pictures
from onnxshap.report.rundata import NEGATIVE_LIMIT, RANKING_LABELS, RunData, UnitRow

CSS = """
body { font: 15px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 4em; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.25em; margin-top: 2.2em; border-bottom: 2px solid #e5e5e5; padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin-top: 1.6em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #f6f6f6; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary th { width: 13em; }
tr.best td { background: #eaf4ea; font-weight: 600; }
tr.neg td { background: #fdecea; }
code { background: #f3f3f3; padding: 0 0.25em; border-radius: 3px; font-size: 0.92em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.note { background: #fff6dd; border-left: 4px solid #e6b800; padding: 0.4em 0.8em; }
.pictures { display: flex; flex-wrap: wrap; gap: 0.8em; }
.pictures figure { margin: 0; flex: 1 1 480px; }
footer { margin-top: 3em; color: #888; font-size: 0.85em; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.dataset.imagesTotal = String(imgs.length);
  document.body.dataset.imagesLoaded = String(ok.length);
});
"""


def fmt(value: Any, digits: int = 4) -> str:
    """A number for the page: 4 significant digits; vectors as their mean plus the first elements."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return f"{float(value):.{digits}g}"
    if isinstance(value, list | tuple | np.ndarray):
        arr = np.asarray(value, dtype=float).ravel()
        head = ", ".join(f"{v:.3g}" for v in arr[:10]) + (", …" if arr.size > 10 else "")
        return f"mean {arr.mean():.{digits}g} over {arr.size} elements: [{head}]"
    return str(value)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = (), classes=None
) -> str:
    """An HTML table; cells are escaped text unless wrapped in Raw; `numeric` columns align right."""
    head = "".join(
        f"<th{' class=num' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headers)
    )
    body = []
    for n, row in enumerate(rows):
        cls = classes[n] if classes and classes[n] else None
        cells = "".join(
            f"<td{' class=num' if i in numeric else ''}>{c if isinstance(c, Raw) else escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr{f' class={cls}' if cls else ''}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw(str):
    """Markup that `table` must not escape."""


def figure(path: Path | None, alt: str, caption: str = "") -> str:
    """<figure> referencing figures/NAME.png relatively."""
    if path is None:
        return ""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="figures/{escape(path.name)}" alt="{escape(alt)}">{cap}</figure>'


def _params(params: dict[str, Any]) -> Raw:
    shown = [f"<code>{escape(k)}={escape(fmt(v))}</code>" for k, v in params.items() if v is not None]
    return Raw(" ".join(shown) or "—")


def _metric(info: dict[str, Any]) -> str:
    name, description = str(info.get("metric")), info.get("metric_description")
    return name if not description or description == name else f"{name} — {description}"


def summary(data: RunData) -> str:
    """Section 1: what ran, on what, how long, and whether it converged."""
    info, meta = data.info, data.info.get("estimator_metadata") or {}
    sha = info.get("model_sha256") or ""
    units = data.units
    kinds = ", ".join(units.kinds)
    skipped = f"; {len(units.skipped)} candidate layers skipped" if units.skipped else ""
    exclude = f"; excluded /{units.exclude}/" if units.exclude else ""
    converged = meta.get("converged")
    stop = meta.get("stop_reason")
    wall = info.get("estimation_seconds", info.get("wall_seconds"))
    audit = info.get("wall_seconds") if "estimation_seconds" in info else info.get("audit_seconds")
    plan = info.get("plan") or {}
    rows: list[tuple[str, Any]] = [
        ("Model", Raw(f"<code>{escape(str(info.get('model')))}</code> (sha256 {escape(sha[:12])}…)")),
        ("Metric", _metric(info)),
        (
            "Data",
            f"{info.get('data')} ({fmt(info.get('valuation_items'))} valuation items, "
            f"{fmt(info.get('held_out_items'))} held out)",
        ),
        ("v(all) (valuation)", fmt(info.get("v_all"))),
        ("v(empty)", fmt(info.get("v_empty"))),
        ("v(all) held out", fmt(info.get("v_all_held_out"))),
        ("Estimator", info.get("estimator")),
        ("Parameters", _params(info.get("parameters") or meta.get("params") or {})),
        ("Evaluations", fmt(info.get("evaluations"))),
        (
            "Wall time",
            (f"{wall:.1f} s estimating" if wall is not None else "—")
            + (f", {audit:.1f} s for the whole audit" if audit is not None else ""),
        ),
        (
            "Time budget",
            "none (--max-seconds not given)"
            if plan.get("max_seconds") is None
            else f"{plan['max_seconds']:g} s for the whole command; "
            + (
                "skipped to stay within it: "
                + "; ".join(f"{name} ({why})" for name, why in plan.get("skipped", {}).items())
                if plan.get("skipped")
                else "every phase fitted"
            ),
        ),
        (
            "Converged",
            f"{fmt(converged) if converged is not None else '—'}"
            + (f" (stop reason: {stop})" if stop else ""),
        ),
        ("Seed", fmt(info.get("seed"))),
        ("Provider", info.get("provider")),
        ("onnxshap version", info.get("onnxshap_version")),
        (
            "Units",
            f"{units.n_units:,} {kinds} units in {len(units.layers)} layers "
            f"(mask placement {units.placement}{exclude}{skipped})",
        ),
        ("Top k", fmt(len(info.get("top_k") or []))),
        ("Players", players_text(data)),
        ("Hub concentration", hub_text(data)),
        ("Removal", f"{info.get('removal', 'zero')}: {info.get('removal_description', REMOVAL_ZERO)}"),
    ]
    body = "".join(
        f"<tr><th>{escape(k)}</th><td>{v if isinstance(v, Raw) else escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f'<h2 id="summary">1. Summary</h2><table class="summary"><tbody>{body}</tbody></table>'


REMOVAL_ZERO = "a removed unit outputs 0 at its mask"


def players_text(data: RunData) -> str:
    """Who the players were: spec, count, lesions, units fixed present."""
    players = data.players
    if players is None or (players.spec == "channels" and not players.lesioned.size):
        return "one player per unit (channels)"
    parts = [f"{players.n_players:,} players ({players.spec})"]
    fixed = players.fixed_present().size
    if fixed:
        parts.append(f"{fixed:,} units in no player stay present")
    if players.lesioned.size:
        asked = ", ".join(players.lesion) or "—"
        parts.append(f"{players.lesioned.size:,} units lesioned for good ({asked})")
    return "; ".join(parts)


def hub_text(data: RunData) -> str:
    found = hub_share(data)
    if found is None:
        return "— (the values do not sum to a positive total)"
    k, share = found
    return f"the top 5% of players ({k}) hold {100 * share:.1f}% of the summed value"


def best_ranking(data: RunData) -> str | None:
    """The ranking (other than 'negative') with the lowest removal-curve AUC."""
    auc = data.curves.get("auc", {})
    names = [n for n in data.rankings() if n != "negative" and n in auc]
    # a best ranking only among rankings that ran: the run's own ranking alone has no competitor
    return min(names, key=lambda n: auc[n]) if len(names) >= 2 else None


def curves_section(data: RunData, fig: Path | None) -> str:
    """Section 2: removal curves and the AUC table, with the best ranking named."""
    steps = list(data.curves.get("steps", []))
    auc = data.curves.get("auc", {})
    best = best_ranking(data)
    rows, classes = [], []
    for name in data.rankings():
        values = data.curves["curves"].get(name)
        if values is None:  # the ranking exists, its curve was skipped to fit the time budget
            continue
        rows.append([name, RANKING_LABELS.get(name, ""), fmt(auc.get(name)), *(f"{v:.3g}" for v in values)])
        classes.append("best" if name == best else None)
    headers = ["ranking", "removes first", "AUC", *(f"k={k}" for k in steps)]
    numeric = list(range(2, len(headers)))
    parts = [
        '<h2 id="curves">2. Removal curves</h2>',
        figure(
            fig,
            "removal curves",
            f"metric on the {data.curves.get('data', 'held-out split')} vs units removed",
        ),
        "<p>The metric after removing the first k units of each ranking. AUC is the area under the curve over "
        "the k range divided by its width (the curve's mean level): <b>lower</b> means the ranking finds the units "
        "that matter faster; for <b>negative</b> (most negative Shapley values first) <b>higher</b> is better.</p>",
        table(headers, rows, numeric, classes),
    ]
    if best is not None:
        others = [n for n in data.rankings() if n not in ("negative", best) and n in auc]
        runner = min(others, key=lambda n: auc[n]) if others else None
        text = f"Best ranking: <b>{escape(best)}</b> (AUC {auc[best]:.4g}"
        text += f"; next {escape(runner)} {auc[runner]:.4g})." if runner else ")."
        parts.append(f"<p>{text}</p>")
    rising = [
        name
        for name in data.rankings()
        if name != "negative"
        and len(c := data.curves["curves"].get(name) or []) > 1
        and any(b > a + 1e-12 for a, b in itertools.pairwise(c))
    ]
    if rising:
        parts.append(
            f"<p>The curve of {', '.join(escape(n) for n in rising)} rises somewhere: removal is not additive, "
            "so removing one more unit can raise the metric (a unit can hurt once others are gone).</p>"
        )
    skipped = data.curves.get("skipped") or {}
    if skipped:
        parts.append(
            "<p>Skipped to fit the time budget: "
            + "; ".join(f"{escape(n)} ({escape(str(w))})" for n, w in skipped.items())
            + ".</p>"
        )
    full = scalar(data.info.get("v_all_held_out"))
    if "negative" in auc and full is not None:
        verdict = "keeps or raises" if auc["negative"] >= full - 1e-12 else "lowers"
        parts.append(
            f"<p>Removing the most negative units {verdict} the metric: AUC {auc['negative']:.4g} against "
            f"{full:.4g} for the full network (higher is better).</p>"
        )
    return "".join(parts)


DECISION_LABELS = {1: "certainly in the top k", -1: "certainly out", 0: "undecided", None: "—"}


def _unit_rows(rows: list[UnitRow], start: int = 1, bound: float | None = None) -> list[list[Any]]:
    """Table rows; intervals clipped to [-bound, bound] (values cannot leave what the game allows), a
    value shared exactly with another listed row marked '=' (their order is arbitrary)."""
    counts: dict[float, int] = {}
    for r in rows:
        counts[r.value] = counts.get(r.value, 0) + 1

    def clip(x: float) -> float:
        return x if bound is None else min(max(x, -bound), bound)

    return [
        [
            i,
            r.unit,
            r.layer or "(several)",
            "" if r.channel is None else r.channel,
            f"{r.value:.4g}" + (" =" if counts[r.value] > 1 else ""),
            f"[{clip(r.ci_low):.3g}, {clip(r.ci_high):.3g}]",
            r.samples,
            DECISION_LABELS.get(r.decision, "—"),
        ]
        for i, r in enumerate(rows, start)
    ]


UNIT_HEADERS = ["#", "unit", "layer", "channel", "value", "CI", "samples", "decision"]


def settle_text(settle: dict[str, Any]) -> str:
    """The budget that would settle the top k (tmab's extrapolation from the current widths: a heuristic)."""
    text = (
        f"settling the rest would take roughly {settle.get('low', 0):,} to {settle.get('high', 0):,} more "
        "evaluations (a heuristic extrapolation from the current interval widths, not a guarantee)"
    )
    left = [
        f"{settle[key]} {what}"
        for key, what in (
            ("ties", "tied at the boundary"),
            ("too_close", "too close to the boundary to extrapolate"),
            ("without_interval", "without an interval yet"),
        )
        if settle.get(key)
    ]
    return text + (f"; not counted: {', '.join(left)}." if left else ".")


def decision_text(data: RunData, k: int) -> str:
    """What is certain about the top k, first: the per-unit decision, and what would settle the rest."""
    info = data.info
    meta = info.get("estimator_metadata") or {}
    decisions = info.get("decisions")
    if not decisions:
        return (
            f"<p>This estimator has no top-k rule: the table ranks by value, and no unit is certified "
            f"(stop reason: {escape(str(meta.get('stop_reason')))}).</p>"
        )
    certain = info.get("certain_in_top_k")
    text = (
        f"<p><b>{fmt(certain)} of the top {k} are certain</b> ({escape(str(info.get('guarantee')))} "
        f"guarantee at delta {escape(str((meta.get('params') or {}).get('delta', '')))}): "
        f"{decisions.get('in')} units certainly in the top k, {decisions.get('out')} certainly out, "
        f"{decisions.get('undecided')} undecided."
    )
    if not meta.get("converged"):
        settle = meta.get("settle_budget_estimate")
        text += f" The run stopped on its budget ({escape(str(meta.get('stop_reason')))})"
        text += "; " + settle_text(settle) if isinstance(settle, dict) else "."
        text += " Undecided units' order is the estimate's, not a certainty."
    return text + "</p>"


def units_section(data: RunData, top_fig: Path | None, neg_fig: Path | None) -> str:
    """Section 3: the top-k units and the most negative ones (repair candidates highlighted)."""
    top = data.top_rows()
    parts = [
        '<h2 id="top">3. Top units</h2>',
        figure(top_fig, "top unit values", "highest Shapley values with confidence intervals"),
        f"<h3>The top {len(top)} units (run.json <code>top_k</code>)</h3>",
        decision_text(data, len(top)),
        table(UNIT_HEADERS, _unit_rows(top, bound=data.value_bound()), (0, 3, 4, 6)),
        "<p>Intervals are clipped to the values the game allows (|value| &le; its range R). "
        + (
            "Values marked = are equal to another listed value (estimates are averages of marginals on "
            "finitely many items, so exact ties occur): the order inside a tie is arbitrary."
            if len({r.value for r in top}) < len(top)
            else ""
        )
        + "</p>",
    ]
    neg = data.negative_rows()
    candidates = data.repair_candidates()
    parts.append("<h3>Most negative units</h3>")
    if not neg:
        parts.append("<p>No unit has a negative value.</p>")
        return "".join(parts)
    parts.append(
        figure(neg_fig, "most negative unit values", "most negative values; red: CI entirely below 0")
    )
    if candidates:
        model = escape(str(data.info.get("model")))
        parts.append(
            f"<p><b>{len(candidates)}</b> unit(s) have a confidence interval entirely below 0 (highlighted): "
            f"removing them reliably helps. These are the repair candidates "
            f"<code>onnxshap prune {model} --run {escape(str(data.path))} --negative -o REPAIRED.onnx</code> "
            "removes.</p>"
        )
    else:
        parts.append(
            "<p>No unit's confidence interval lies entirely below 0, so there is no repair candidate.</p>"
        )
    listed = min(len(neg), NEGATIVE_LIMIT)
    parts.append(
        f"<p>The table lists the {listed} most negative units"
        + (" and every repair candidate.</p>" if candidates else ".</p>")
    )
    classes = ["neg" if r.reliably_negative else None for r in neg]
    parts.append(table(UNIT_HEADERS, _unit_rows(neg, bound=data.value_bound()), (0, 3, 4, 6), classes))
    return "".join(parts)


def layers_section(data: RunData, dist_fig: Path | None, hist_fig: Path | None) -> str:
    """Section 4: top-k units per layer (graph order) and the histogram of all values."""
    by_name = {layer.layer: layer for layer in data.units.layers}
    rows = [
        [layer, by_name[layer].op, channels, k, f"{100 * k / channels:.0f}%"]
        for layer, k, channels in layer_counts(data)
    ]
    return "".join(
        [
            '<h2 id="layers">4. Where the top units sit</h2>',
            figure(dist_fig, "top units per layer", "number of top-k units per layer, in graph order"),
            table(["layer", "op", "channels", "top-k units", "share of layer"], rows, (2, 3, 4)),
            figure(hist_fig, "histogram of values", "distribution of all units' Shapley values"),
        ]
    )


def modes_section(data: RunData, fig: Path | None, images: Path | None = None) -> str:
    """Section 5 (vector games): the Shapley modes of the top units (a table when they are short vectors,
    pictures when they are images)."""
    if not data.vector or data.modes is None:
        return ""
    shape = list(data.modes.shape[1:])
    parts = [
        '<h2 id="modes">5. Shapley modes</h2>'
        f"<p>This is a vector game: every player has a contribution per output element (shape {shape}). "
        "Red: the player raises that element's value; blue: it lowers it.</p>",
        figure(fig, "Shapley modes heatmap", "top players (rows) × output elements (columns)"),
        figure(images, "per-pixel modes", "which players paint which pixels, by layer"),
    ]
    flat = data.modes.reshape(len(data.modes), -1)
    if flat.shape[1] <= 16:
        rows = data.top_rows() or data.rows
        if len(data.rows) <= 30:
            rows = data.rows
        names = data.info.get("element_names")
        if not names or len(names) != flat.shape[1]:
            label = "group" if data.info.get("metric") == "per-group" else "element"
            names = [f"{label} {c}" for c in range(flat.shape[1])]
        headers = ["player", *(str(n) for n in names), "mean"]
        body = [
            [r.unit, *(f"{v:.4g}" for v in flat[r.index]), f"{flat[r.index].mean():.4g}"] for r in rows[:30]
        ]
        parts.append(table(headers, body, tuple(range(1, flat.shape[1] + 2))))
    return "".join(parts)


def interactions_section(data: RunData, fig: Path | None) -> str:
    """Pairwise interactions among the top players, when `onnxshap interactions` wrote them."""
    if not data.interactions or fig is None:
        return ""
    meta = data.interactions_meta
    ranked = sorted(data.interactions, key=lambda r: -abs(float(r["value"])))[:15]
    rows = [
        [
            r["unit_i"],
            r["unit_j"],
            f"{float(r['value']):.4g}",
            f"[{float(r['ci_low']):.3g}, {float(r['ci_high']):.3g}]",
        ]
        for r in ranked
    ]
    return (
        '<h2 id="interactions">Pairwise interactions</h2>'
        "<p>The Shapley interaction index of each pair of top players (= msapy's "
        "<code>network_interaction_2d</code>: the pair's value played as one player minus each one's value "
        "with the other lesioned). Positive: synergy; negative: redundancy. "
        f"Intervals: {escape(str(meta.get('guarantee', '—')))}.</p>"
        + figure(fig, "interaction heatmap", "interaction of every pair of top players")
        + table(["player i", "player j", "interaction", "CI"], rows, (2,))
    )


def pictures_section(pictures: Pictures, number: int) -> str:
    """Section 6: a picture per top unit, or one line on why there is none."""
    parts = [f'<h2 id="pictures">{number}. Top units on inputs</h2>']
    if pictures.description:
        parts.append(f"<p>{escape(pictures.description)}</p>")
    if pictures.note:
        parts.append(f'<p class="note">{escape(pictures.note)}</p>')
    if pictures.items:
        figs = "".join(
            figure(
                p.path,
                f"activation maps of {p.row.unit}",
                f"#{p.rank} {p.row.unit} (value {p.row.value:.4g})",
            )
            for p in pictures.items
        )
        parts.append(f'<div class="pictures">{figs}</div>')
    return "".join(parts)


def render(data: RunData, figs: dict[str, Path | None], pictures: Pictures) -> str:
    """The whole page."""
    info = data.info
    model = Path(str(info.get("model"))).name
    title = f"onnxshap report — {model} — {info.get('metric')}"
    sections = [
        summary(data),
        curves_section(data, figs.get("removal_curves")),
        units_section(data, figs.get("top_units"), figs.get("negative_units")),
        layers_section(data, figs.get("layer_distribution"), figs.get("value_histogram")),
        modes_section(data, figs.get("modes_heatmap"), figs.get("mode_images")),
        interactions_section(data, figs.get("interactions")),
        pictures_section(pictures, 6 if data.vector else 5),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style><script>{SCRIPT}</script></head>\n"
        f"<body><h1>Neuron Shapley report: {escape(model)}</h1>"
        f'<p class="sub">{escape(str(info.get("metric_description") or info.get("metric")))} · '
        f"{escape(str(info.get('estimator')))} estimator · run folder <code>{escape(str(data.path))}</code></p>"
        + "\n".join(s for s in sections if s)
        + f"<footer>Written by onnxshap {escape(str(info.get('onnxshap_version', '')))} from "
        "run.json, shapley.csv, curves.json and units.json of the run folder.</footer>"
        "</body></html>\n"
    )
