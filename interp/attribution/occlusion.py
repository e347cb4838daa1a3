"""Occlusion (Zeiler & Fergus, 2014): the score drop when a window is grayed out."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from interp._checks import OUTPUTS, Target, check_choice, check_positive_int, normalize_target, select_scores
from interp.attribution._chunks import even_chunks, fold, repeat_per_example, scan_sum, unfold
from interp.attribution._core import ScoreFn, check_batch, check_fn


def occlusion(
    fn: ScoreFn,
    window: tuple[int, int] = (8, 8),
    stride: tuple[int, int] = (4, 4),
    baseline: float | jax.Array = 0.5,
    chunk_size: int | None = 64,
    output: str = "score",
) -> Callable[..., jax.Array]:
    """Slides a window over NHWC images and records how much the target score drops.

    Each window position replaces the pixels under the window (all channels)
    by `baseline` and measures `score(x) - score(occluded)`. A pixel's
    attribution is the mean drop over the windows that cover it, as in Captum;
    pixels no window covers (a remainder at the right/bottom edge when the
    stride does not fit) get 0. Since windows span all channels, the map is
    per pixel: [b, h, w].

    Args:
      fn: batch `x` [b, h, w, c] to scores [b] or logits [b, classes].
      window: (height, width) of the occluding patch.
      stride: (vertical, horizontal) step between window positions.
      baseline: fill value: a float (default 0.5, mid-gray 128/255 for
        images in [0, 1]) or an array broadcastable to `x` (e.g. [h, w, c]).
      chunk_size: at most this many window positions per call of `fn`
        (folded into its batch, example-major; chunks of equal size run in a
        scan); None evaluates all positions at once.
      output: "score" (drop of the raw score/logit) or "probability" (drop of
        the target's softmax probability; `fn` must return logits and a
        target is required).

    Returns:
      `attribute(x, target=None)`: [b, h, w], or [b, k, h, w] for a [b, k] target.

    Raises:
      TypeError: `fn` is a Linen module without variables (see `_core.check_fn`).
      ValueError: bad `window`, `stride`, `chunk_size` or `output`; at the
        call, a bad batch or target.
    """
    window = _pair("window", window)
    stride = _pair("stride", stride)
    check_positive_int("chunk_size", chunk_size, allow_none=True)
    check_choice("output", output, OUTPUTS)
    fn = check_fn(fn)

    def attribute(x: jax.Array, target: Target = None) -> jax.Array:
        x = check_batch(fn, x)
        if x.ndim != 4:
            raise ValueError(f"x: expected images [b, h, w, c], got shape {list(x.shape)}")
        if output == "probability" and target is None:
            raise ValueError("target: output='probability' needs a target class to take the probability of")
        h, w = x.shape[1:3]
        starts, counts = _positions(h, w, window, stride)
        fill = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
        target = normalize_target(target, x.shape[0])

        def scores(images, per_image_target):
            outputs = fn(images)
            if output == "probability":
                outputs = jax.nn.softmax(outputs, axis=-1)
            return select_scores(outputs, per_image_target)

        rows = jnp.arange(h)[:, None]
        cols = jnp.arange(w)[None, :]

        def masks_of(start):  # [h, w], True under the window
            return (
                (rows >= start[0]) & (rows < start[0] + window[0]) & (cols >= start[1]) & (cols < start[1] + window[1])
            )

        def chunk_total(chunk):  # chunk: window corners [n, 2]
            masks = jax.vmap(masks_of)(chunk)  # [n, h, w]
            occluded = jnp.where(masks[None, :, :, :, None], fill[:, None], x[:, None])  # [b, n, h, w, c]
            # The clean image rides in the same call as the occluded ones:
            # identical kernels, so a window that changes nothing drops
            # exactly 0 (separate calls may round differently).
            variants = jnp.concatenate([x[:, None], occluded], axis=1)
            per_image = repeat_per_example(target, variants.shape[1], x.shape[0])
            out = unfold(scores(fold(variants), per_image), variants.shape[1])  # [b, 1 + n] or [b, 1 + n, k]
            drops = out[:, :1] - out[:, 1:]
            return jnp.einsum("bn...,nhw->b...hw", drops, masks.astype(x.dtype))

        total = _scan_chunks(chunk_total, starts, chunk_size, pad=(h, w))
        counts = jnp.broadcast_to(jnp.asarray(counts, x.dtype), total.shape)
        return jnp.where(counts > 0, total / jnp.maximum(counts, 1.0), 0.0)

    return attribute


def _scan_chunks(chunk_total: Callable, starts: np.ndarray, chunk_size: int | None, pad) -> jax.Array:
    """Sums `chunk_total` over `starts` [p, 2], at most `chunk_size` at a time in a scan."""
    chunks, size = even_chunks(len(starts), chunk_size)
    # Padding corners (h, w) cover no pixel, so they add exactly 0.
    padded = np.concatenate([starts, np.tile(np.asarray(pad, np.int32), (chunks * size - len(starts), 1))])
    padded = jnp.asarray(padded.reshape(chunks, size, 2))
    if chunks == 1:
        return chunk_total(padded[0])
    return scan_sum(chunk_total, padded)


def _positions(h: int, w: int, window, stride) -> tuple[np.ndarray, np.ndarray]:
    """Window top-left corners [p, 2] and how many windows cover each pixel [h, w]."""
    if window[0] > h or window[1] > w:
        raise ValueError(f"window: {window} does not fit in images of size {(h, w)}")
    r = np.arange(0, h - window[0] + 1, stride[0])
    c = np.arange(0, w - window[1] + 1, stride[1])
    starts = np.stack(np.meshgrid(r, c, indexing="ij"), axis=-1).reshape(-1, 2).astype(np.int32)
    cover_r = np.zeros(h)
    cover_c = np.zeros(w)
    for s in r:
        cover_r[s : s + window[0]] += 1
    for s in c:
        cover_c[s : s + window[1]] += 1
    return starts, np.outer(cover_r, cover_c)


def _pair(name: str, value) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in pair):
        raise ValueError(f"{name}: expected a positive int or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])
