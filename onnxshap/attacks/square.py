"""Square Attack (Andriushchenko et al., ECCV 2020), L-inf, score-based black-box.

The attack only queries ``predict`` (a batch of inputs -> a batch of scores), so it works on any ONNX export:
no gradients, no access to the graph. It is a random search that stays on the corners of the L-inf ball:

- Initialisation: vertical stripes, every (channel, column) gets one random sign, ``x + sign * eps``.
- Every iteration each still-unbroken item tries one square window of side ``s`` at a random position and
  gives every channel a new random sign (the same sign over the whole square of that channel); the
  change is kept if it lowers the margin loss. Updates that would not change the image are redrawn.
- ``s = round(sqrt(p * H * W))`` (clamped to ``[1, min(H, W) - 1]``) with ``p`` halved on the paper's
  piecewise-constant schedule (:func:`p_schedule`), rescaled to the query budget.

Conventions (the paper's, stated because results depend on them):

- Queries: the clean pass that decides which items need attacking is not counted; the stripe
  initialisation is query 1, so an item uses at most ``max_queries`` queries.
- Items the model already gets wrong (untargeted) or already puts in the target class (targeted) count
  as successes with 0 queries and ``x_adv = x``; :attr:`AttackResult.clean_accuracy` reports how many
  were correct to begin with, :attr:`AttackResult.attack_success_rate` the rate among items that needed
  attacking.
- Loss: the margin on logits, ``z_y - max_{k != y} z_k`` (untargeted, minimised) or
  ``max_{k != t} z_k - z_t`` (targeted). The paper uses cross-entropy for targeted attacks; the margin
  reaches the same goal and needs no softmax. Probabilities are turned into log-probabilities first, which
  gives exactly the logit margin when they are a softmax.
- Success is read off the model's own decision (argmax of the scores of the kept candidate).

Deviation from the reference code: window positions are drawn from all ``H - s + 1`` rows and
``W - s + 1`` columns (the reference's ``randint(0, h - s)`` never places a window on the last row or
column, which matters on 8x8 images).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_MAX_QUERIES",
    "DEFAULT_P_INIT",
    "AttackResult",
    "noise_attack",
    "p_schedule",
    "session_predict",
    "square_attack",
    "square_size",
]

Predict = Callable[[np.ndarray], np.ndarray]
Scores = Literal["auto", "logits", "probs"]

DEFAULT_EPS = 0.15
"""Default L-inf radius for inputs scaled to [0, 1], chosen for low-resolution inputs like the 8x8 digit
fixtures (2.4 of their 16 gray levels; MNIST's usual radius is 0.3). At 0.1 the fixture CNNs are robust
on about 60% of their correct items against both this attack and a finite-difference PGD; at 0.15 the
attack breaks about 90% while random sign noise of the same size breaks about 30%. For natural images
at higher resolution use the customary 8/255 (CIFAR-10) or 4/255 (ImageNet)."""

DEFAULT_MAX_QUERIES = 1000
"""Query budget per item (the paper's ImageNet budget is 10,000; the p schedule is rescaled to it)."""

DEFAULT_P_INIT = 0.05
"""The paper's L-inf value for standard (not adversarially trained) models; it uses 0.3-0.8 for robust
MNIST models. On the digit fixtures the success rate hardly depends on it (0.05 to 0.8 within 3 points)."""


@dataclass(frozen=True)
class AttackResult:
    """Adversarial examples and per-item outcome of an attack on ``n`` items."""

    x_adv: np.ndarray  # same shape and dtype as x
    success: np.ndarray  # bool [n]: the model's decision on x_adv is wrong (or the target)
    queries: np.ndarray  # int64 [n]: model queries spent on the item (0 if it needed no attack)
    clean_correct: np.ndarray  # bool [n]: argmax on the clean x equals y
    y: np.ndarray  # int64 [n] true labels
    target: np.ndarray | None = None  # int64 [n] target classes of a targeted attack
    params: dict[str, Any] = field(default_factory=dict)  # attack name and settings, timing

    @property
    def n(self) -> int:
        """Number of items."""
        return len(self.success)

    @property
    def success_rate(self) -> float:
        """Fraction of all items with a successful adversarial example (1 - robust accuracy, untargeted)."""
        return float(self.success.mean()) if self.n else 0.0

    @property
    def clean_accuracy(self) -> float:
        """Top-1 accuracy of the model on the clean inputs."""
        return float(self.clean_correct.mean()) if self.n else 0.0

    @property
    def robust_accuracy(self) -> float:
        """Fraction of items still classified correctly on x_adv."""
        return float((self.clean_correct & ~self.success).mean()) if self.n else 0.0

    @property
    def attacked(self) -> np.ndarray:
        """Bool [n]: items that needed attacking (not already a success on the clean input)."""
        return self.queries > 0

    @property
    def attack_success_rate(self) -> float:
        """Success rate among the items that needed attacking (the paper's reported number)."""
        att = self.attacked
        return float(self.success[att].mean()) if att.any() else 0.0

    def summary(self) -> str:
        """One line: clean accuracy, success rates, queries."""
        won = self.attacked & self.success
        q = f"{np.mean(self.queries[won]):.1f}" if won.any() else "-"
        return (
            f"{self.params.get('attack', 'attack')} eps={self.params.get('eps')}: "
            f"clean acc {self.clean_accuracy:.3f}, success {self.success_rate:.3f} "
            f"({self.attack_success_rate:.3f} of {int(self.attacked.sum())} attacked), "
            f"mean queries of successes {q}"
        )


_SCHEDULE = (
    (10, 1),
    (50, 2),
    (200, 4),
    (500, 8),
    (1000, 16),
    (2000, 32),
    (4000, 64),
    (6000, 128),
    (8000, 256),
    (10000, 512),
)


def p_schedule(p_init: float, it: int, n_iters: int) -> float:
    """The paper's piecewise-constant schedule for p, rescaled from 10,000 iterations to ``n_iters``."""
    i = int(it / n_iters * 10000)
    for upper, div in _SCHEDULE:
        if i <= upper:
            return p_init / div
    return p_init  # past the budget (never reached): the reference code returns p_init


def square_size(p: float, h: int, w: int) -> int:
    """Side of the square covering a fraction ``p`` of the H x W pixels, in ``[1, min(H, W) - 1]``."""
    s = round(math.sqrt(p * h * w))
    return max(1, min(s, min(h, w) - 1))


def session_predict(session: Any, input_name: str | None = None, output_name: str | None = None) -> Predict:
    """A ``predict`` callable over an onnxruntime ``InferenceSession`` (first input/output by default)."""
    from onnxshap.runtime.session import input_metas

    inp = input_name or input_metas(session)[0].name
    out = output_name or session.get_outputs()[0].name

    def predict(xb: np.ndarray) -> np.ndarray:
        return session.run([out], {inp: xb})[0]

    return predict


class _Model:
    """Wraps ``predict``: layout, chunking, score checks."""

    def __init__(self, predict: Predict, channel_axis: int, dtype: np.dtype, batch_size: int | None) -> None:
        self.predict = predict
        self.channel_axis = channel_axis
        self.dtype = dtype
        self.batch_size = batch_size
        self.log_probs = False  # decided on the clean pass

    def scores(self, xi: np.ndarray) -> np.ndarray:
        """Scores [m, K] (float64) for inputs ``xi`` in the internal [m, C, H, W] layout."""
        xb = np.ascontiguousarray(np.moveaxis(xi, 1, self.channel_axis), dtype=self.dtype)
        step = self.batch_size or len(xb)
        outs = [np.asarray(self.predict(xb[i : i + step])) for i in range(0, len(xb), step)]
        z = np.concatenate(outs) if len(outs) > 1 else outs[0]
        if z.ndim != 2 or z.shape[0] != len(xb):
            raise ValueError(f"predict must return scores [n, K] for a batch of {len(xb)}, got {z.shape}")
        z = z.astype(np.float64)
        if self.log_probs:
            z = np.log(np.maximum(z, 1e-300))
        return z

    def decide(self, kind: Scores, z: np.ndarray) -> np.ndarray:
        """Fix once whether scores are probabilities (margins then use log-probabilities); returns z."""
        if kind == "auto":
            self.log_probs = bool(
                len(z) and np.all(z >= 0) and np.all(z <= 1) and np.allclose(z.sum(1), 1.0, atol=1e-3)
            )
        else:
            self.log_probs = kind == "probs"
        return np.log(np.maximum(z, 1e-300)) if self.log_probs else z


def _margin_loss(z: np.ndarray, cls: np.ndarray, targeted: bool) -> np.ndarray:
    """Margin loss to minimise: negative means the attack succeeded (up to ties)."""
    rows = np.arange(len(z))
    zc = z[rows, cls]
    other = z.copy()
    other[rows, cls] = -np.inf
    margin = zc - other.max(1)
    return -margin if targeted else margin


def _is_success(z: np.ndarray, y: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    pred = z.argmax(1)
    return pred == target if target is not None else pred != y


def _bounds(x: np.ndarray, eps: float, clip: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel [lo, hi]: the L-inf ball intersected with the clip box, representable in x's dtype.

    Rounded inward so that ``|x_adv - x| <= eps`` holds both in x's dtype and in float64.
    """
    x64 = x.astype(np.float64)
    lo64, hi64 = x64 - eps, x64 + eps
    if clip is not None:
        lo64, hi64 = np.maximum(lo64, clip[0]), np.minimum(hi64, clip[1])
        if np.any(lo64 > hi64):
            raise ValueError(f"x has values farther than eps={eps} outside the clip range {tuple(clip)}")
    lo, hi = lo64.astype(x.dtype), hi64.astype(x.dtype)
    for _ in range(8):
        bad_lo = (x - lo > eps) | (x64 - lo.astype(np.float64) > eps) | (lo.astype(np.float64) < lo64)
        bad_hi = (hi - x > eps) | (hi.astype(np.float64) - x64 > eps) | (hi.astype(np.float64) > hi64)
        if not (bad_lo.any() or bad_hi.any()):
            break
        lo = np.where(bad_lo, np.nextafter(lo, x), lo)
        hi = np.where(bad_hi, np.nextafter(hi, x), hi)
    return lo, hi


def _prepare(
    x: np.ndarray, y: np.ndarray, channel_axis: int, eps: float, max_queries: int
) -> tuple[np.ndarray, np.ndarray, int]:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected images [n, C, H, W] or [n, H, W, C], got shape {x.shape}")
    if not -4 <= channel_axis < 4 or channel_axis % 4 == 0:
        raise ValueError(f"channel_axis must be 1, 2, 3 or -1 (not the batch axis), got {channel_axis}")
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} items but y has {len(y)}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    if max_queries < 1:
        raise ValueError(f"max_queries must be at least 1, got {max_queries}")
    return x, y, channel_axis % 4


def _start(
    predict: Predict,
    x: np.ndarray,
    y: np.ndarray,
    channel_axis: int,
    batch_size: int | None,
    kind: Scores,
    targeted: bool,
    target: np.ndarray | None,
    rng: np.random.Generator,
) -> tuple[_Model, np.ndarray, np.ndarray, np.ndarray | None]:
    """Clean pass: the model wrapper, x in the internal layout, clean scores and the targets."""
    model = _Model(predict, channel_axis, x.dtype, batch_size)
    xi = np.moveaxis(x, channel_axis, 1)
    z = model.decide(kind, model.scores(xi)) if len(x) else np.zeros((0, 1))
    k = z.shape[1]
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must be classes 0..{k - 1} of the model's {k} scores")
    if targeted:
        if target is None:
            target = (y + rng.integers(1, max(k, 2), size=len(y))) % k
        target = np.asarray(target).astype(np.int64).reshape(-1)
        if len(target) != len(y) or np.any(target == y) or np.any(target < 0) or np.any(target >= k):
            raise ValueError("target must give, per item, a class of the model different from y")
    elif target is not None:
        raise ValueError("target given but targeted=False")
    return model, xi, z, target


def square_attack(
    predict: Predict,
    x: np.ndarray,
    y: np.ndarray,
    eps: float = DEFAULT_EPS,
    max_queries: int = DEFAULT_MAX_QUERIES,
    p_init: float = DEFAULT_P_INIT,
    seed: int = 0,
    targeted: bool = False,
    target: np.ndarray | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
    channel_axis: int = 1,
    progress: bool = False,
    batch_size: int | None = None,
    scores: Scores = "auto",
) -> AttackResult:
    """L-inf Square Attack on images ``x`` [n, C, H, W] (or NHWC with ``channel_axis=-1``).

    ``predict`` maps a batch to logits or probabilities [n, K] (``scores`` says which; "auto" detects
    probabilities as rows in [0, 1] summing to 1). All unbroken items are queried together each iteration
    (in chunks of ``batch_size`` if given). ``targeted`` without ``target`` draws a random other class per
    item from ``seed``. Deterministic for a given seed, inputs and model.
    """
    t0 = time.perf_counter()
    x, y, axis = _prepare(x, y, channel_axis, eps, max_queries)
    rng = np.random.default_rng(seed)
    model, xi, z0, target = _start(predict, x, y, axis, batch_size, scores, targeted, target, rng)
    n, c, h, w = xi.shape
    lo, hi = _bounds(xi, eps, clip)
    goal = target if target is not None else y
    success = _is_success(z0, y, target)  # already fooled: success with 0 queries, x_adv = x
    todo = np.flatnonzero(~success)
    queries = np.zeros(n, np.int64)
    x_best = xi.copy()
    best_loss = np.full(n, np.inf)

    if len(todo):
        # Vertical stripes: one sign per (item, channel, column), the same over all rows.
        up = np.broadcast_to(rng.random((len(todo), c, 1, w)) < 0.5, (len(todo), c, h, w))
        cand = np.where(up, hi[todo], lo[todo])
        z = model.scores(cand)
        x_best[todo] = cand
        best_loss[todo] = _margin_loss(z, goal[todo], targeted)
        success[todo] = _is_success(z, y[todo], None if target is None else target[todo])
        queries[todo] = 1

    chans = np.arange(c)[None, :, None, None]
    bar = _progress(progress and len(todo) > 0, max_queries - 1, "square attack")
    for it in range(max_queries - 1):
        act = todo[~success[todo]]
        if not len(act):
            break
        m = len(act)
        s = square_size(p_schedule(p_init, it, max_queries), h, w)
        r0 = rng.integers(0, h - s + 1, size=m)
        c0 = rng.integers(0, w - s + 1, size=m)
        win = (
            np.arange(m)[:, None, None, None],
            chans,
            (r0[:, None] + np.arange(s))[:, None, :, None],
            (c0[:, None] + np.arange(s))[:, None, None, :],
        )
        cand = x_best[act]  # a copy (fancy indexing)
        old, wlo, whi = cand[win], lo[act][win], hi[act][win]
        signs = rng.random((m, c)) < 0.5
        new = np.where(signs[:, :, None, None], whi, wlo)
        # Redraw the channel signs of windows the update would leave unchanged (as the reference does).
        same = np.all(new == old, axis=(1, 2, 3))
        for _ in range(64):
            if not same.any():
                break
            signs[same] = rng.random((int(same.sum()), c)) < 0.5
            new = np.where(signs[:, :, None, None], whi, wlo)
            same = np.all(new == old, axis=(1, 2, 3))
        cand[win] = new
        z = model.scores(cand)
        loss = _margin_loss(z, goal[act], targeted)
        better = loss < best_loss[act]
        keep = act[better]
        x_best[keep] = cand[better]
        best_loss[keep] = loss[better]
        success[keep] = _is_success(z[better], y[keep], None if target is None else target[keep])
        queries[act] += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(success=f"{success.mean():.3f}", active=m, refresh=False)
    if bar is not None:
        bar.close()

    params = {
        "attack": "square-linf",
        "eps": float(eps),
        "max_queries": int(max_queries),
        "p_init": float(p_init),
        "seed": int(seed),
        "targeted": bool(targeted),
        "clip": list(clip) if clip is not None else None,
        "channel_axis": int(axis),
        "scores": "probs" if model.log_probs else "logits",
        "seconds": round(time.perf_counter() - t0, 3),
    }
    x_adv = np.ascontiguousarray(np.moveaxis(x_best, 1, axis))
    return AttackResult(x_adv, success, queries, z0.argmax(1) == y, y, target, params)


def noise_attack(
    predict: Predict,
    x: np.ndarray,
    y: np.ndarray,
    eps: float = DEFAULT_EPS,
    max_queries: int = DEFAULT_MAX_QUERIES,
    seed: int = 0,
    clip: tuple[float, float] | None = (0.0, 1.0),
    channel_axis: int = 1,
    batch_size: int | None = None,
) -> AttackResult:
    """Naive baseline: up to ``max_queries`` fresh uniform random-sign perturbations of size eps per item.

    An item succeeds at the first draw the model gets wrong. Same query accounting as
    :func:`square_attack` (misclassified items: success with 0 queries).
    """
    t0 = time.perf_counter()
    x, y, axis = _prepare(x, y, channel_axis, eps, max_queries)
    rng = np.random.default_rng(seed)
    model, xi, z0, _ = _start(predict, x, y, axis, batch_size, "logits", False, None, rng)
    lo, hi = _bounds(xi, eps, clip)
    clean_correct = z0.argmax(1) == y
    success = ~clean_correct
    queries = np.zeros(len(x), np.int64)
    x_best = xi.copy()
    todo = np.flatnonzero(clean_correct)
    for _ in range(max_queries):
        act = todo[~success[todo]]
        if not len(act):
            break
        cand = np.where(rng.random(lo[act].shape) < 0.5, hi[act], lo[act])
        won = model.scores(cand).argmax(1) != y[act]
        queries[act] += 1
        x_best[act[won]] = cand[won]
        success[act[won]] = True
    params = {
        "attack": "random-sign-noise",
        "eps": float(eps),
        "max_queries": int(max_queries),
        "seed": int(seed),
        "clip": list(clip) if clip is not None else None,
        "channel_axis": int(axis),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    x_adv = np.ascontiguousarray(np.moveaxis(x_best, 1, axis))
    return AttackResult(x_adv, success, queries, clean_correct, y, None, params)


def _progress(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="it")
