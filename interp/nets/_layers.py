"""Stateless layer helpers shared by the zoo, with torch/Caffe semantics.

All functions take and return NHWC float arrays. They are pure `jax.numpy`/`lax`
code, so any backward-rule rewrite in `interp.ops` sees ordinary primitives
(max-pool is `interp.ops.max_pool`, a custom JVP around slices and `max`).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from interp.ops.maxpool import max_pool as _switch_max_pool


def _pool_out_size(size: int, window: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """Output length of a pooling window along one axis, as torch computes it."""
    span = size + 2 * pad - window
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    # torch (and Caffe) drop a last window that would start in the right padding.
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def max_pool(
    x: jax.Array, window: int, stride: int, pad: int = 0, ceil_mode: bool = False
) -> jax.Array:
    """Square max-pool with torch's `MaxPool2d(window, stride, pad, ceil_mode)` semantics.

    Padding is filled with -inf (never zero), so a padded border can not win the
    max even when every activation is negative (e.g. after BatchNorm). Values
    and gradients equal `lax.reduce_window` max's; the gradient follows the
    argmax switches without XLA's `select_and_scatter`, which is several times
    slower on CPU (`python -m benchmarks.max_pool`; see `interp.ops.maxpool`).

    Args:
      x: [B, H, W, C] input.
      window: pooling window side.
      stride: pooling stride.
      pad: symmetric padding on each spatial side.
      ceil_mode: round the output size up (Caffe's convention), padding the
        bottom/right with -inf as needed.

    Returns:
      [B, H', W', C] pooled activations.
    """
    pads = []
    for size in x.shape[1:3]:
        out = _pool_out_size(size, window, stride, pad, ceil_mode)
        extra = (out - 1) * stride + window - (size + 2 * pad)
        pads.append((pad, pad + max(extra, 0)))
    return _switch_max_pool(
        x,
        window_dimensions=(1, window, window, 1),
        window_strides=(1, stride, stride, 1),
        padding=((0, 0), pads[0], pads[1], (0, 0)),
    )


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
    """[out, size] averaging matrix of torch's adaptive average pooling on one axis.

    Window i covers [floor(i * size / out), ceil((i + 1) * size / out)), so
    windows overlap or repeat when `size` is not a multiple of `out` (or is
    smaller than it), exactly as `torch.nn.AdaptiveAvgPool2d` does.
    """
    mat = np.zeros((out, size), np.float32)
    for i in range(out):
        start = (i * size) // out
        end = -((-(i + 1) * size) // out)
        mat[i, start:end] = 1.0 / (end - start)
    return mat


def adaptive_avg_pool(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """Adaptive average pooling to a fixed spatial size, for any input H, W.

    Implemented as two small matrix products with static averaging matrices,
    which is exact, differentiable and free of per-window Python loops.

    Args:
      x: [B, H, W, C] input.
      out_hw: (H', W') output size.

    Returns:
      [B, H', W', C] averages.
    """
    mat_h = jnp.asarray(_adaptive_matrix(x.shape[1], out_hw[0]), x.dtype)
    mat_w = jnp.asarray(_adaptive_matrix(x.shape[2], out_hw[1]), x.dtype)
    return jnp.einsum("bhwc,ph,qw->bpqc", x, mat_h, mat_w)


def local_response_norm(
    x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
) -> jax.Array:
    """Cross-channel local response normalization (Krizhevsky et al., 2012).

    Computes `x / (k + alpha / size * sum_{window} x**2) ** beta`, the window
    being `size` neighboring channels, zero-padded at the ends: the formula of
    Caffe's LRN layer and of `torch.nn.LocalResponseNorm`.

    Args:
      x: [B, H, W, C] input.
      size: number of channels in the window.
      alpha: scale of the squared sum (divided by `size`, as Caffe does).
      beta: exponent.
      k: additive constant.

    Returns:
      [B, H, W, C] normalized activations.
    """
    squares = lax.reduce_window(
        x * x,
        0.0,
        lax.add,
        window_dimensions=(1, 1, 1, size),
        window_strides=(1, 1, 1, 1),
        padding=((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)),
    )
    return x / (k + (alpha / size) * squares) ** beta


def flatten(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H*W*C] in NHWC order (weight import permutes torch's CHW)."""
    return x.reshape(x.shape[0], -1)
