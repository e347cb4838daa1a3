"""Argument checks and the target convention shared by the method families, with errors that name the argument.

The target convention (see `interp.attribution`): `fn(x)` returns per-example
scores [b] when no target is given, or logits [b, classes] from which the
target, an int, int [b] or int [b, k], picks the scores. It lives here because
the methods (`attribution`) and what evaluates them (`metrics`) both follow it,
and neither may import the other.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Target = int | jax.Array | np.ndarray | None


def check_positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """Returns `value` if it is an int >= 1 (or None when allowed), else raises a `ValueError`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def normalize_target(target: Target, batch: int) -> jax.Array | None:
    """`target` as int32 [b] or [b, k] (None stays None); checks its shape."""
    if target is None:
        return None
    target = jnp.asarray(target)
    if not jnp.issubdtype(target.dtype, jnp.integer):
        raise ValueError(f"target: expected integer class indices, got dtype {target.dtype}")
    if target.ndim == 0:
        return jnp.full((batch,), target, jnp.int32)
    if target.ndim in (1, 2) and target.shape[0] == batch:
        return target.astype(jnp.int32)
    raise ValueError(f"target: expected an int, [b] or [b, k] with b={batch}, got shape {list(target.shape)}")


def select_scores(outputs: jax.Array, target: jax.Array | None) -> jax.Array:
    """Per-example scores [b] (or [b, k]) from `fn`'s outputs and a normalized target.

    A concrete target out of range is an error. A traced one (a target passed
    through `jit`) cannot be checked, so where it is out of range the score is
    NaN, and so is its gradient: a gradient map of an impossible class is NaN
    wherever the gradient reaches the input (a ReLU that is off still passes
    0), never a silent map of zeros.

    Raises:
      ValueError: outputs of the wrong shape, or (when concrete) a target out of range.
    """
    if target is None:
        if outputs.ndim != 1:
            raise ValueError(
                f"fn: expected per-example scores [b] when no target is given, got shape "
                f"{list(outputs.shape)}; pass target= to pick a class from logits"
            )
        return outputs
    if outputs.ndim != 2:
        raise ValueError(f"fn: expected logits [b, classes] with a target, got shape {list(outputs.shape)}")
    classes = outputs.shape[1]
    picks = target[:, None] if target.ndim == 1 else target
    if not isinstance(target, jax.core.Tracer):
        bad = np.asarray(target)
        if bad.size and (bad.min() < 0 or bad.max() >= classes):
            raise ValueError(f"target: class indices must lie in [0, {classes}); got {bad.min()}..{bad.max()}")
        scores = jnp.take_along_axis(outputs, picks, axis=1)
    else:
        scores = jnp.take_along_axis(outputs, picks, axis=1, mode="clip") * nan_out_of_range(picks, classes)
    return scores[:, 0] if target.ndim == 1 else scores


def nan_out_of_range(target: jax.Array, classes: int) -> jax.Array:
    """1 where `target` lies in [0, classes), else NaN: the factor that marks a traced target out of range.

    A factor rather than a NaN fill: a filled value's gradient is 0, which would
    make every gradient-based map of that target silently zero.
    """
    return jnp.where((target >= 0) & (target < classes), 1.0, jnp.nan)


def check_target_range(outputs: jax.ShapeDtypeStruct, target: jax.Array | None) -> None:
    """Checks a normalized target against the classes of outputs shaped like `outputs`.

    Only a concrete target can be checked (a traced one passes), as in `select_scores`.
    """
    if target is not None:
        jax.eval_shape(lambda out: select_scores(out, target), outputs)


# What a method scores, shared by occlusion and the deletion/insertion metrics:
# `fn`'s output as it is, or the target's softmax probability of logits.
OUTPUTS = ("score", "probability")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Returns `value` if it is one of `choices`, else raises a `ValueError` naming `name`."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
