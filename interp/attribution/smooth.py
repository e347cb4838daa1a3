"""SmoothGrad (Smilkov et al., 2017), SmoothGrad^2 and VarGrad (Adebayo et al., 2018).

A meta-transform: it wraps any attribution method and averages it over noisy
copies of the input, with an explicit PRNG key.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from interp._checks import check_choice, check_positive_int
from interp.attribution._chunks import fold, repeat_per_example, unfold, weighted_sum
from interp.attribution._core import check_batch
from interp.ops import for_speed

SMOOTH_MODES = ("mean", "square", "var")


def smooth_grad(
    method: Callable[..., jax.Array],
    noise_std: float = 0.15,
    samples: int = 32,
    mode: str = "mean",
    chunk_size: int | None = None,
) -> Callable[..., jax.Array]:
    """Averages `method` over Gaussian perturbations of its input.

    Args:
      method: an attribution function `method(x, *args, **kwargs) -> attr`,
        e.g. `saliency(fn)` or `integrated_gradients(fn, steps=16)`.
      noise_std: noise standard deviation relative to the input's range: each
        example i gets sigma_i = noise_std * (max(x_i) - min(x_i)), as in
        Smilkov et al. (who recommend 0.1-0.2).
      samples: number of noisy copies.
      mode: "mean" (SmoothGrad: E[attr]), "square" (SmoothGrad^2: E[attr^2])
        or "var" (VarGrad: Var[attr] = E[attr^2] - E[attr]^2, clamped at 0
        against rounding).
      chunk_size: at most this many noisy copies per call of `method`
        (folded into its batch, example-major; chunks of equal size run in a
        scan) so peak memory does not grow with `samples`. None evaluates all
        at once.

    Returns:
      `attribute(x, *args, key, **kwargs)`: `x` [b, ...] and the PRNG key
      `key=` (keyword-only, as in every `interp` function that draws); the
      other arguments (e.g. the target) go to `method`. `method` sees the noisy
      copies as one batch [b * c, ...], so an array argument whose leading
      axis is the batch (a [b] or [b, k] target, an IG baseline [b, ...]) is
      per-example and repeated for the copies; others pass unchanged. Same
      shape as `method`'s output. Copy j of `x` is `x + sigma *
      jax.random.normal(jax.random.split(key, samples)[j], x.shape)`,
      whatever the `chunk_size`.
    """
    check_choice("mode", mode, SMOOTH_MODES)
    check_positive_int("samples", samples)
    check_positive_int("chunk_size", chunk_size, allow_none=True)
    if not noise_std >= 0:
        raise ValueError(f"noise_std: expected a non-negative float, got {noise_std!r}")

    def attribute(x: jax.Array, *args, key: jax.Array, **kwargs) -> jax.Array:
        x = check_batch(None, jnp.asarray(x))
        axes = tuple(range(1, x.ndim))
        span = x.max(axis=axes, keepdims=True) - x.min(axis=axes, keepdims=True)  # [b, 1, ...]
        sigma = noise_std * span

        # Copy j's noise is jax.random.normal(keys[j], x.shape), drawn one key at
        # a time (lax.map) over flat examples, so each draw is one vectorized
        # pass. Drawn for all keys at once, XLA fused the draw into the move to
        # example-major order, and that fusion ran unvectorized (figures in
        # benchmarks/RESULTS.md, "Speed workarounds").
        draw = for_speed(lambda k: jax.random.normal(k, (x.shape[0], x[0].size), x.dtype))

        def noisy(keys):  # [c] -> [b, c, ...]
            noise = jnp.moveaxis(jax.lax.map(draw, keys), 0, 1).reshape(x.shape[:1] + (len(keys),) + x.shape[1:])
            copies = x[:, None] + sigma[:, None] * noise
            per_copy = [repeat_per_example(a, len(keys), x.shape[0]) for a in args]
            per_copy_kw = {k: repeat_per_example(v, len(keys), x.shape[0]) for k, v in kwargs.items()}
            attr = unfold(method(fold(copies), *per_copy, **per_copy_kw), len(keys))
            return attr if mode == "mean" else (attr, attr * attr)

        keys = jax.random.split(key, samples)
        totals = weighted_sum(noisy, keys, jnp.full((samples,), 1.0 / samples, x.dtype), chunk_size)
        if mode == "mean":
            return totals
        mean, mean_square = totals
        return mean_square if mode == "square" else jnp.maximum(mean_square - mean * mean, 0.0)

    return attribute
