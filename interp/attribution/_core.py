"""What every attribution method shares: input checks, scores, and input gradients.

A method is a transform in the style of `jax.grad`: `method(fn, **options)`
returns `attribute(x, target=None, ...)`, pure, batch-first, `jit`/`vmap`-able.

`fn` is any JAX callable on a batch `x` [b, ...]:
  * with `target=None`, `fn(x)` returns per-example scores [b];
  * otherwise `fn(x)` returns logits [b, classes] and `target` picks the score:
    an int (the same class for every example), int [b] (one class each), or
    int [b, k] (k classes each, e.g. every class, sharing one forward pass).

Attributions have the shape of `x` ([b, ...]), or [b, k, ...] for a [b, k] target.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from interp._checks import Target, normalize_target, select_scores
from interp.nets.adapter import Model, check_input, check_not_linen, layout_hint
from interp.ops import for_speed

ScoreFn = Callable[[jax.Array], jax.Array]


def check_fn(fn: Any) -> ScoreFn:
    """`fn` checked when a method is built: a `Model` as it is, a plain callable explained on failure.

    A plain function's first call that fails on images that look NCHW raises
    a `ValueError` saying so (`interp.nets.adapter.layout_hint`); the check
    runs where the function is traced, never per step.

    Raises:
      TypeError: `fn` is a Linen module (without variables) or not callable.
    """
    check_not_linen(fn, "fn")
    if not callable(fn):
        raise TypeError(f"fn: expected a callable or a nets.Model, got {type(fn).__name__}")
    if isinstance(fn, Model):
        return fn

    def explained(x):
        with layout_hint(x):
            return fn(x)

    return explained


def check_batch(fn: Any, x: jax.Array, name: str = "x") -> jax.Array:
    """Checks `x` as a batch for `fn`: the model's input spec if it has one, else rank >= 2.

    NaN and infinity are rejected where `x` is concrete (see `check_input`).

    Raises:
      ValueError: a rank below 2, an empty batch, or what `check_input` rejects.
    """
    spec = fn.input_spec if isinstance(fn, Model) else None
    if spec is None and np.ndim(x) < 2:
        raise ValueError(f"{name}: expected a batch [b, ...] of rank >= 2, got shape {list(np.shape(x))}")
    return check_input(x, spec, name)


def score_fn(fn: ScoreFn, target: Target, batch: int) -> ScoreFn:
    """`x -> scores` [b] (or [b, k]) for `fn` and `target`."""
    target = normalize_target(target, batch)
    return lambda x: select_scores(fn(x), target)


def input_gradients(fn: ScoreFn, x: jax.Array, target: Target = None) -> tuple[jax.Array, jax.Array]:
    """Scores and their gradients with respect to the input, per example.

    `fn` runs through `interp.ops.for_speed` (e.g. a plain function's
    `lax.reduce_window` max-pools are differentiated as the switch max-pool
    on XLA:CPU): the same values and gradients, faster.

    Returns:
      `(scores, grads)`: scores [b] and grads [b, ...] like `x` (NaN for an
      example whose score is NaN or infinite, e.g. from a NaN input); or, for a
      [b, k] target, scores [b, k] and grads [b, k, ...] from one forward pass
      (one VJP per target column, vmapped).
    """
    scores, grads = unchecked_input_gradients(fn, x, target)
    return scores, grads + broadcast_to_rank(nan_unless_finite(scores), grads.ndim)


def unchecked_input_gradients(fn: ScoreFn, x: jax.Array, target: Target = None) -> tuple[jax.Array, jax.Array]:
    """`input_gradients` without carrying a non-finite score to its gradient (for sums that carry it once)."""
    scores_of = for_speed(score_fn(fn, target, np.shape(x)[0]))
    scores, pullback = jax.vjp(scores_of, x)
    return scores, pull_back_each(pullback, scores)


def nan_unless_finite(scores: jax.Array) -> jax.Array:
    """0 where a score is finite, NaN where it is not: added to what the score explains.

    A NaN input (or weight) makes the score NaN, but a ReLU net's input
    gradient hardly depends on the input's values, so it could stay finite
    and look like a valid map; traced inputs are not checked (`check_batch`),
    so the score's finiteness is carried to its explanation instead: one
    add, no host sync. A sum over many evaluations (integrated gradients)
    sums these offsets alongside and adds the total once.
    """
    return jnp.where(jnp.isfinite(scores), 0.0, jnp.nan).astype(scores.dtype)


def broadcast_to_rank(per_example: jax.Array, ndim: int) -> jax.Array:
    """`per_example` [b] (or [b, k]) with trailing axes of size 1 up to rank `ndim`."""
    return per_example.reshape(per_example.shape + (1,) * (ndim - per_example.ndim))


def pull_back_each(pullback: Callable, scores: jax.Array) -> jax.Array:
    """Per-example gradients through `pullback` of the scores [b] or [b, k].

    Examples are independent, so a cotangent of ones gives each example its
    own gradient; k targets become k one-hot cotangents, vmapped.
    """
    if scores.ndim == 1:
        return pullback(jnp.ones_like(scores))[0]
    k = scores.shape[1]
    cotangents = jnp.eye(k, dtype=scores.dtype)[:, None, :] * jnp.ones_like(scores)[None]  # [k, b, k]
    grads = jax.vmap(lambda ct: pullback(ct)[0])(cotangents)  # [k, b, ...]
    return jnp.moveaxis(grads, 0, 1)
