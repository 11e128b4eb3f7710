"""A picture per top unit: its activation maps on a few inputs, next to the inputs when they are images.

The model and the data are re-opened from what run.json recorded. When either is gone (or the model changed),
the report still builds and says why the pictures are missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.errors import OnnxShapError
from onnxshap.report.figures import shorten
from onnxshap.report.rundata import RunData, UnitRow


@dataclass
class UnitPicture:
    """One unit's picture file."""

    row: UnitRow
    path: Path
    rank: int = 0  # position in the top-k list


@dataclass
class Pictures:
    """The pictures drawn, what they show, and (when some or all are missing) why."""

    items: list[UnitPicture] = field(default_factory=list)
    note: str | None = None
    description: str = ""


def spatial_rows(data: RunData, rows: list[UnitRow]) -> list[UnitRow]:
    """The rows whose unit has a spatial map (one main-graph conv unit with a rank-4 masked tensor)."""
    layer_of = data.units.unit_layers()
    out = []
    for row in rows:
        if row.unit_index is None:
            continue
        layer = data.units.layers[int(layer_of[row.unit_index])]
        if layer.graph == "main" and layer.kind == "conv" and layer.rank == 4 and layer.batch_aligned:
            out.append(row)
    return out


def _bases(data: RunData) -> list[Path]:
    """Folders a relative path in run.json may be relative to: the run's working directory first."""
    run = data.path.resolve()
    bases: list[Path] = []
    out = data.config.get("out")
    if out and not Path(out).is_absolute():
        parts = Path(out).parts
        if ".." not in parts and len(parts) < len(run.parts) and run.parts[-len(parts) :] == parts:
            bases.append(Path(*run.parts[: -len(parts)]))
    bases += [Path.cwd(), run, run.parent]
    return list(dict.fromkeys(bases))


def locate(recorded: str | Path | None, data: RunData) -> Path | None:
    """Find a file or folder run.json recorded (absolute, or relative to where the run was started)."""
    if not recorded:
        return None
    path = Path(recorded)
    candidates = [path] if path.is_absolute() else [base / path for base in _bases(data)]
    candidates += [base / path.name for base in (data.path.resolve(), data.path.resolve().parent)]
    return next((c for c in candidates if c.exists()), None)


def image_array(dataset: Any) -> tuple[str, np.ndarray] | None:
    """(input name, images [N, H, W, C] float in [0, 1]) when an input looks like images, else None."""
    spec = getattr(dataset, "spec", None)
    for name, arr in dataset.inputs.items():
        x = np.asarray(arr, dtype=np.float64)
        if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[2] > 3 and x.shape[3] > 3:
            img = x.transpose(0, 2, 3, 1)
        elif x.ndim == 4 and x.shape[3] in (1, 3) and x.shape[1] > 3 and x.shape[2] > 3:
            img = x
        elif x.ndim == 3 and spec is not None and spec.layout == "NHW":
            img = x[..., None]
        else:
            continue
        if spec is not None and spec.channels == "BGR" and img.shape[-1] == 3:
            img = img[..., ::-1]
        low = img.min(axis=(1, 2, 3), keepdims=True)
        span = img.max(axis=(1, 2, 3), keepdims=True) - low
        return name, (img - low) / np.where(span > 0, span, 1.0)
    return None


def pick_items(labels: np.ndarray | None, n_items: int, count: int) -> np.ndarray:
    """`count` item indices: the first item of each label in turn (varied inputs), else the first items."""
    if labels is None:
        return np.arange(min(count, n_items))
    chosen: list[int] = []
    seen: set[object] = set()
    for i, row in enumerate(labels.tolist()):
        label = tuple(row) if isinstance(row, list) else row  # label sequences [N, L] too
        if label not in seen:
            seen.add(label)
            chosen.append(i)
            if len(chosen) == count:
                break
    for i in range(n_items):
        if len(chosen) >= count:
            break
        if i not in chosen:
            chosen.append(i)
    return np.array(chosen[:count])


CELL = 112  # pixels of the taller side of one image in a unit picture
PAD = 10


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _colorize(values: np.ndarray, cmap: str, low: float, high: float) -> np.ndarray:
    """uint8 RGB of a 2-D array through a matplotlib colormap."""
    from matplotlib import colormaps

    scaled = np.clip((values - low) / ((high - low) or 1.0), 0.0, 1.0)
    return (colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)


def _fit(rgb: np.ndarray, width: int, height: int) -> Any:
    """A PIL image scaled (nearest neighbour, aspect kept) to fit width x height."""
    from PIL import Image

    img = Image.fromarray(rgb)
    scale = min(width / img.width, height / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.NEAREST)


def draw_unit(
    row: UnitRow,
    maps: np.ndarray,
    images: np.ndarray | None,
    titles: list[str],
    path: Path,
    rank: int = 0,
) -> Path:
    """One unit (drawn with Pillow): its input images above its activation maps, one colour scale per unit."""
    from PIL import Image, ImageDraw

    n, h, w = maps.shape
    cell_h = CELL
    cell_w = int(np.clip(CELL * w / h, CELL * 0.6, CELL * 3))
    low, high = float(maps.min()), float(maps.max())
    if low < 0:
        bound = max(-low, high) or 1.0
        cmap, low, high = "RdBu_r", -bound, bound
    else:
        cmap, low, high = "magma", 0.0, high or 1.0
    title_font, small = _font(13), _font(11)
    header, caption = 26, 16
    rows = [images, None] if images is not None else [None]
    bar_w = 70
    width = PAD + n * (cell_w + PAD) + bar_w
    height = header + len(rows) * (cell_h + caption + PAD) + PAD
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    prefix = f"#{rank}  " if rank else ""
    draw.text(
        (PAD, 6),
        f"{prefix}{shorten(row.unit, 48)}   value {row.value:.4g}   map {h}×{w}",
        fill="black",
        font=title_font,
    )
    for r, imgs in enumerate(rows):
        top = header + r * (cell_h + caption + PAD)
        for j in range(n):
            if imgs is not None:
                img = imgs[j]
                rgb = (np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img) * 255
                tile = _fit(rgb.round().astype(np.uint8), cell_w, cell_h)
                label = titles[j]
            else:
                tile = _fit(_colorize(maps[j], cmap, low, high), cell_w, cell_h)
                label = "activation" if images is not None else titles[j]
            left = PAD + j * (cell_w + PAD)
            canvas.paste(tile, (left + (cell_w - tile.width) // 2, top + (cell_h - tile.height) // 2))
            draw.text((left, top + cell_h + 2), label, fill="#444444", font=small)
    # colour bar of the map row
    top = header + (len(rows) - 1) * (cell_h + caption + PAD)
    ramp = np.linspace(high, low, cell_h)[:, None].repeat(12, axis=1)
    left = width - bar_w + 4
    canvas.paste(Image.fromarray(_colorize(ramp, cmap, low, high)), (left, top))
    draw.rectangle((left, top, left + 11, top + cell_h - 1), outline="#888888")
    draw.text((left + 16, top - 2), f"{high:.3g}", fill="#444444", font=small)
    draw.text((left + 16, top + cell_h - 12), f"{low:.3g}", fill="#444444", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path


def unit_pictures(data: RunData, fig_dir: Path, n_units: int = 8, n_inputs: int = 4) -> Pictures:
    """Draw `figures/unit_XX.png` for the top spatial units; never raises for a missing model or data."""
    top = data.top_rows() or data.rows
    rows = spatial_rows(data, top)[:n_units]
    if not rows:
        return Pictures(
            note="no activation pictures: none of the top players is a single conv filter with a spatial map"
        )
    try:
        return _draw(data, rows, fig_dir, n_inputs)
    except (OnnxShapError, ImportError, OSError) as exc:
        return Pictures(note=f"activation pictures are missing: {exc}")


def _draw(data: RunData, rows: list[UnitRow], fig_dir: Path, n_inputs: int) -> Pictures:
    from onnxshap.audit.runner import UNMEASURED, config_from_run, reopen
    from onnxshap.fileio import sha256_of
    from onnxshap.runtime.activation_maps import activation_maps

    info = data.info
    cfg = config_from_run(info, metric=UNMEASURED)  # no game is built: the run's metric is never looked up
    model = locate(info.get("model"), data)
    if model is None:
        return Pictures(
            note=f"activation pictures are missing: the model {info.get('model')} cannot be found any more"
        )
    recorded = info.get("model_sha256")
    if recorded and sha256_of(model) != recorded:
        return Pictures(
            note=f"activation pictures are missing: {model} has changed since the run (sha256 differs)"
        )
    source = info.get("data") or cfg.data
    data_path = locate(source, data)
    if data_path is None:
        return Pictures(note=f"activation pictures are missing: the data {source} cannot be found any more")
    spec = cfg.spec
    spec_path = locate(spec, data) if spec else None
    if spec and spec_path is None:
        return Pictures(
            note=f"activation pictures are missing: the preprocessing spec {spec} cannot be found"
        )
    cfg.data, cfg.spec = data_path, spec_path  # where they are now
    opened = reopen(data.folder, cfg, model=model, provider="cpu")
    inst = opened.inst
    if inst.units.unit_ids() != data.units.unit_ids():
        return Pictures(note="activation pictures are missing: the model's units no longer match units.json")
    dataset = opened.data
    items = pick_items(dataset.labels, len(dataset), n_inputs)
    inputs = {k: v[items] for k, v in dataset.inputs.items()}
    maps = activation_maps(inst, inputs, [r.unit_index for r in rows])
    found = image_array(dataset)
    images = found[1][items] if found is not None else None
    labels_1d = dataset.labels is not None and dataset.labels.ndim == 1
    titles = [f"item {i}" + (f", label {int(dataset.labels[i])}" if labels_1d else "") for i in items]
    pictures = Pictures(
        description=(
            f"Activation maps (the unit's channel after its chain, full network) on {len(items)} items of "
            f"{data_path.name}" + (", input image above each map." if images is not None else ".")
        )
    )
    position = {r.unit: i for i, r in enumerate(data.top_rows() or data.rows, 1)}
    for row in rows:
        if row.unit_index in maps:
            name = f"unit_{len(pictures.items) + 1:02d}.png"
            path = draw_unit(
                row, maps[row.unit_index], images, titles, fig_dir / name, position.get(row.unit, 0)
            )
            pictures.items.append(UnitPicture(row, path, position.get(row.unit, 0)))
    return pictures
