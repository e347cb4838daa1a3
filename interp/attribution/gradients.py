"""Gradient maps: saliency (Simonyan et al., 2014) and gradient x input (Shrikumar et al., 2016)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from interp._checks import Target, check_choice
from interp.attribution._core import ScoreFn, check_batch, check_fn, input_gradients

SALIENCY_MODES = ("signed", "absolute", "max_abs_channel")


def saliency(fn: ScoreFn, mode: str = "signed") -> Callable[..., jax.Array]:
    """The gradient of the target score with respect to the input.

    Args:
      fn: batch `x` [b, ...] to scores [b] or logits [b, classes] (see `_core`).
      mode: "signed" (the raw gradient), "absolute" (its magnitude) or
        "max_abs_channel" (max over the last, channel axis of |gradient|, the
        map of Simonyan et al.; for NHWC images this gives [b, h, w]).

    Returns:
      `attribute(x, target=None)`: attributions like `x` [b, ...] ([b, k, ...]
      for a [b, k] target); "max_abs_channel" drops the last axis.

    Raises:
      TypeError: `fn` is a Linen module without variables (see `_core.check_fn`).
      ValueError: a bad `mode`; at the call, a bad batch or target (see `_core`).
    """
    check_choice("mode", mode, SALIENCY_MODES)
    fn = check_fn(fn)

    def attribute(x: jax.Array, target: Target = None) -> jax.Array:
        x = check_batch(fn, x)
        _, grads = input_gradients(fn, x, target)
        if mode == "absolute":
            return jnp.abs(grads)
        if mode == "max_abs_channel":
            return jnp.abs(grads).max(axis=-1)
        return grads

    return attribute


def gradient_x_input(fn: ScoreFn) -> Callable[..., jax.Array]:
    """The input times the gradient of the target score, elementwise.

    For a linear `fn(x) = x . w` this is exactly `x * w`, whose sum is `fn(x)`
    minus the bias.

    Returns:
      `attribute(x, target=None)`: [b, ...] like `x`, or [b, k, ...] for a [b, k] target.

    Raises:
      TypeError: `fn` is a Linen module without variables (see `_core.check_fn`).
    """
    fn = check_fn(fn)

    def attribute(x: jax.Array, target: Target = None) -> jax.Array:
        x = check_batch(fn, x)
        _, grads = input_gradients(fn, x, target)
        # Many targets add an axis after the batch; x is shared across it.
        return grads * (x if grads.ndim == x.ndim else x[:, None])

    return attribute
