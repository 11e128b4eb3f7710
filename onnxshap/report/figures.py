"""The report's PNG figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no window)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxshap.report.rundata import NEGATIVE_LIMIT, RANKING_LABELS, RunData, UnitRow

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STYLE = {
    "shapley": {"color": "#c0392b", "linewidth": 2.6, "marker": "o", "zorder": 5},
    "negative": {"color": "#27ae60", "linewidth": 2.2, "marker": "v", "zorder": 4},
    "loo": {"color": "#e67e22", "linewidth": 1.6, "marker": "s"},
    "activation": {"color": "#8e44ad", "linewidth": 1.6, "marker": "^"},
    "weight": {"color": "#795548", "linewidth": 1.6, "marker": "D", "markersize": 4},
    "random": {"color": "#7f8c8d", "linewidth": 1.6, "linestyle": "--", "marker": "."},
}
POSITIVE, NEGATIVE, NEUTRAL, UNSURE = "#2e86c1", "#c0392b", "#95a5a6", "#93bfdc"
DPI = 110


def shorten(text: str, limit: int = 38) -> str:
    """Cut a long layer / unit name in the middle."""
    if len(text) <= limit:
        return text
    keep = (limit - 1) // 2
    return text[:keep] + "…" + text[-(limit - 1 - keep) :]


def scalar(value: Any) -> float | None:
    """A run.json value as one number: itself, or the mean of a vector value; None when absent."""
    if value is None:
        return None
    arr = np.asarray(value, dtype=float)
    return float(arr.mean()) if arr.size else None


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib Figure on the Agg canvas (imported lazily)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write the figure as PNG (white background)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", facecolor="white")
    return path


def _grid(ax: Axes, axis: str = "both") -> None:
    ax.grid(True, axis=axis, color="#dddddd", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def removal_curves(data: RunData, path: Path) -> Path:
    """Metric on the held-out split vs number of units removed, one line per ranking."""
    steps = list(data.curves["steps"])
    fig = new_figure(7.5, 4.6)
    ax = fig.add_subplot()
    for name in data.rankings():
        values = data.curves["curves"][name]
        auc = data.curves.get("auc", {}).get(name)
        label = RANKING_LABELS.get(name, name) + (f"  (AUC {auc:.3f})" if auc is not None else "")
        ax.plot(steps, values, label=label, **STYLE.get(name, {"linewidth": 1.4, "marker": "."}))
    empty = scalar(data.info.get("v_empty"))
    if empty is not None:
        ax.axhline(
            empty, color="#444444", linewidth=0.9, linestyle=":", label=f"all units removed ({empty:.3g})"
        )
    if steps and max(steps) > 10:
        ax.set_xscale("symlog", linthresh=1, linscale=0.6)
        ax.set_xticks(steps)
        ax.set_xticklabels([str(s) for s in steps])
        ax.set_xlim(min(steps) - 0.1, max(steps) * 1.08)
    ax.set_xlabel("units removed (top k of each ranking)")
    metric = data.info.get("metric", "metric")
    ax.set_ylabel(f"{metric} on the {data.curves.get('data', 'held-out split')}")
    ax.set_title("Removal curves")
    _grid(ax)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    return save(fig, path)


def _value_bars(
    rows: list[UnitRow], path: Path, title: str, colors: list[str], note: str = "", bound: float | None = None
) -> Path:
    """Horizontal points with CI error bars, first row at the top."""
    n = len(rows)
    fig = new_figure(7.5, max(2.2, 0.26 * n + 1.1))
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    values = np.array([r.value for r in rows])
    lo, hi = np.array([r.ci_low for r in rows]), np.array([r.ci_high for r in rows])
    if bound is not None:  # whiskers no wider than the game allows
        lo, hi = np.clip(lo, -bound, bound), np.clip(hi, -bound, bound)
    low = np.nan_to_num(values - lo, nan=0.0, posinf=0.0)
    high = np.nan_to_num(hi - values, nan=0.0, posinf=0.0)
    ax.barh(y, values, color=colors, alpha=0.35, height=0.7)
    ax.hlines(y, values - np.maximum(low, 0), values + np.maximum(high, 0), colors=colors, linewidth=1.4)
    ax.scatter(values, y, c=colors, s=16, zorder=3)
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_yticks(y)
    ax.set_yticklabels([shorten(r.unit, 34) for r in rows], fontsize=8)
    ax.set_xlabel("Shapley value (bars: confidence interval)" + (f" — {note}" if note else ""))
    ax.set_title(title)
    _grid(ax, "x")
    return save(fig, path)


def top_units(data: RunData, path: Path) -> Path:
    """The run's top k (as asked) with their confidence intervals, clipped to the game's range."""
    rows = data.top_rows()
    colors = [POSITIVE if r.ci_low > 0 else UNSURE for r in rows]
    return _value_bars(
        rows, path, f"Top {len(rows)} units", colors, "dark blue: CI entirely above 0", data.value_bound()
    )


def negative_units(data: RunData, path: Path, limit: int = NEGATIVE_LIMIT) -> Path | None:
    """The most negative values; CI entirely below zero in red (repair candidates). None if no value < 0."""
    rows = data.negative_rows(limit, candidates=0)
    if not rows:
        return None
    colors = [NEGATIVE if r.reliably_negative else NEUTRAL for r in rows]
    return _value_bars(
        rows,
        path,
        f"The {len(rows)} most negative units",
        colors,
        "red: CI entirely below 0",
        data.value_bound(),
    )


def layer_counts(data: RunData) -> list[tuple[str, int, int]]:
    """(layer, top-k units in it, channels) for every unit layer, in graph order."""
    top = [r.layer for r in data.top_rows()]
    return [(layer.layer, top.count(layer.layer), layer.channels) for layer in data.units.layers]


def layer_distribution(data: RunData, path: Path, max_layers: int = 40) -> Path:
    """How many of the top-k units sit in each layer (graph order, first layer at the top)."""
    counts = layer_counts(data)
    omitted = 0
    if len(counts) > max_layers:
        kept = [c for c in counts if c[1] > 0]
        omitted = len(counts) - len(kept)
        counts = kept
    n = len(counts)
    fig = new_figure(7.5, max(2.2, 0.28 * n + 1.2))
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    top = np.array([c[1] for c in counts])
    ax.barh(y, top, color=POSITIVE, height=0.7)
    for yi, (_, k, channels) in zip(y, counts, strict=True):
        ax.text(k, yi, f" {k} / {channels}", va="center", fontsize=8, color="#333333")
    ax.set_yticks(y)
    ax.set_yticklabels([shorten(c[0], 40) for c in counts], fontsize=8)
    ax.set_xlim(0, max(1, int(top.max(initial=0))) * 1.25)
    k = len(data.top_rows())
    xlabel = f"units among the top {k} (label: top-k units / channels of the layer)"
    if omitted:
        xlabel += f"; {omitted} layers without top units not shown"
    ax.set_xlabel(xlabel)
    ax.set_title("Top units per layer (graph order)")
    _grid(ax, "x")
    return save(fig, path)


def value_histogram(data: RunData, path: Path) -> Path:
    """Histogram of all units' values, with zero and the top-k threshold marked."""
    values = np.array([r.value for r in data.rows])
    values = values[np.isfinite(values)]
    fig = new_figure(7.5, 3.4)
    ax = fig.add_subplot()
    bins = int(np.clip(np.sqrt(len(values)) * 2, 10, 80))
    ax.hist(values, bins=bins, color=POSITIVE, alpha=0.8, edgecolor="white", linewidth=0.5)
    ax.axvline(0, color="#333333", linewidth=0.9)
    top = data.top_rows()
    if top:
        threshold = min(r.value for r in top)
        ax.axvline(
            threshold, color=NEGATIVE, linestyle="--", linewidth=1.1, label=f"top-{len(top)} threshold"
        )
        ax.legend(fontsize=8)
    ax.set_xlabel("Shapley value")
    ax.set_ylabel("units")
    ax.set_title(f"All {len(values)} unit values")
    _grid(ax, "y")
    return save(fig, path)


def mode_columns(data: RunData, limit: int = 128) -> tuple[np.ndarray, list[str], str]:
    """Modes [n_units, columns] flattened (and averaged into `limit` bins when larger), labels and a note."""
    assert data.modes is not None
    modes = data.modes.reshape(len(data.modes), -1).astype(float)
    shape = data.modes.shape[1:]
    width = modes.shape[1]
    if width > limit:
        edges = np.linspace(0, width, limit + 1).astype(int)
        pooled = np.stack([modes[:, a:b].mean(axis=1) for a, b in itertools.pairwise(edges)], 1)
        labels = [str(a) for a in edges[:-1]]
        return pooled, labels, f"output shape {list(shape)} flattened and averaged into {limit} bins"
    if data.info.get("metric") == "per-class" and len(shape) == 1:
        return modes, [str(c) for c in range(width)], "class"
    if len(shape) == 1:
        return modes, [str(c) for c in range(width)], "output element"
    return modes, [str(c) for c in range(width)], f"output element (shape {list(shape)}, flattened)"


def modes_heatmap(data: RunData, path: Path, limit: int = 30) -> Path:
    """Shapley modes of the top units: units (rows) x output elements (columns), diverging colours."""
    modes, labels, xlabel = mode_columns(data)
    rows = data.top_rows()[:limit] or data.rows[:limit]
    matrix = modes[[r.index for r in rows]]
    vmax = float(np.nanmax(np.abs(matrix), initial=0.0)) or 1.0
    n, m = matrix.shape
    fig = new_figure(min(13.0, max(6.0, 0.42 * m + 3.4)), max(3.0, 0.27 * n + 1.4))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_yticks(np.arange(n))
    ax.set_yticklabels([shorten(r.unit, 34) for r in rows], fontsize=8)
    step = max(1, m // 40)
    ax.set_xticks(np.arange(0, m, step))
    ax.set_xticklabels(labels[::step], fontsize=8)
    if m <= 16 and n <= 40:
        for i in range(n):
            for j in range(m):
                v = matrix[i, j]
                color = "white" if abs(v) > 0.6 * vmax else "#222222"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5, color=color)
    ax.set_xlabel(xlabel)
    ax.set_title(f"Shapley modes of the top {n} units")
    fig.colorbar(image, ax=ax, shrink=0.8, label="contribution")
    return save(fig, path)


def interactions_heatmap(rows: list[dict[str, str]], path: Path) -> Path | None:
    """Pairwise interactions (interactions.csv) as a symmetric heatmap; None when there are none."""
    if not rows:
        return None
    names: list[str] = []
    for r in rows:
        for key in ("unit_i", "unit_j"):
            if r[key] not in names:
                names.append(r[key])
    m = len(names)
    matrix = np.full((m, m), np.nan)
    for r in rows:
        a, b = names.index(r["unit_i"]), names.index(r["unit_j"])
        matrix[a, b] = matrix[b, a] = float(r["value"])
    vmax = float(np.nanmax(np.abs(matrix), initial=0.0)) or 1.0
    fig = new_figure(min(12.0, 0.38 * m + 3.6), min(11.0, 0.34 * m + 2.2))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks(np.arange(m))
    ax.set_yticks(np.arange(m))
    ax.set_xticklabels([shorten(n, 24) for n in names], rotation=90, fontsize=7)
    ax.set_yticklabels([shorten(n, 30) for n in names], fontsize=7)
    if m <= 12:
        for i in range(m):
            for j in range(m):
                if i != j:
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6.5)
    ax.set_title(f"Pairwise interactions of the top {m} players")
    fig.colorbar(image, ax=ax, shrink=0.8, label="interaction (red: synergy, blue: redundancy)")
    return save(fig, path)


def hub_share(data: RunData, fraction: float = 0.05) -> tuple[int, float] | None:
    """(k, share): the top ceil(fraction * n) players' summed value over all players' summed value (the
    MSA paper's hub concentration); None when the total is not positive."""
    values = np.array([r.value for r in data.rows])
    total = float(values.sum())
    if not len(values) or total <= 0:
        return None
    k = max(1, int(np.ceil(fraction * len(values))))
    return k, float(np.sort(values)[::-1][:k].sum() / total)


def mode_images(data: RunData, path: Path, per_layer: int = 8) -> Path | None:
    """Image-shaped modes (e.g. a generator's per-pixel modes): each layer's top players as pictures of which
    pixels they paint (red: raise, blue: lower). None unless the modes are images (last two axes >= 4)."""
    if data.modes is None or data.modes.ndim < 3 or min(data.modes.shape[-2:]) < 4:
        return None
    modes = data.modes.reshape(len(data.modes), -1, *data.modes.shape[-2:]).mean(axis=1)
    by_layer: dict[str, list[UnitRow]] = {}
    for row in data.rows:  # sorted by value, descending
        by_layer.setdefault(row.layer or "(several layers)", []).append(row)
    layers = list(by_layer)
    cols = min(per_layer, max(len(v) for v in by_layer.values()))
    fig = new_figure(1.3 * cols + 1.6, 1.45 * len(layers) + 0.6)
    vmax = float(np.abs(modes).max()) or 1.0
    image = None
    for r, layer in enumerate(layers):
        for c, row in enumerate(by_layer[layer][:cols]):
            ax = fig.add_subplot(len(layers), cols, r * cols + c + 1)
            image = ax.imshow(modes[row.index], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(
                shorten(row.unit.rsplit(":", 1)[-1] if row.channel is not None else row.unit, 14), fontsize=7
            )
            if c == 0:
                ax.set_ylabel(shorten(layer, 18), fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=fig.axes, shrink=0.6, label="contribution per pixel")
    fig.suptitle("Per-pixel Shapley modes: the top players of each layer", fontsize=10)
    return save(fig, path)
