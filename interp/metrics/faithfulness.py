"""Deletion and insertion curves (Petsiuk et al., 2018, RISE) with their AUC.

Pixels are ranked by attribution, most important first. *Deletion* replaces
the top pixels of the image by a baseline in `steps` equal fractions and
records the model's probability for the target after each step: a faithful
map makes it fall fast (low AUC). *Insertion* starts from the baseline and
reveals the top pixels: a faithful map makes it rise fast (high AUC).

    curves = deletion(model, steps=32)(x, attribution, target=labels)
    curves.scores   # [b, 33], curves.auc  # [b]

All steps of all examples are evaluated in one jitted call: the images of a
step are built from a per-pixel rank by one comparison, and `jax.lax.map`
runs the steps `chunk_size` at a time, so memory is bounded by
`chunk_size * b` images however many steps there are.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp._checks import OUTPUTS, check_choice, check_target_range, normalize_target, select_scores
from interp.metrics.localization import pixel_map
from interp.nets.adapter import Model, check_input

Baseline = str | float | jax.Array | Callable[[jax.Array], jax.Array]


class Curves(NamedTuple):
    """Deletion or insertion curves.

    Attributes:
      fractions: float32 [steps + 1], fraction of pixels removed (deletion) or
        revealed (insertion) at each step, from 0 to 1.
      scores: float32 [b, steps + 1], the target's probability (or score) at each step.
      auc: float32 [b], trapezoidal area under `scores` over `fractions`.
    """

    fractions: jax.Array
    scores: jax.Array
    auc: jax.Array


def auc(scores: jax.Array, fractions: jax.Array | None = None) -> jax.Array:
    """Trapezoidal area under curves [b, n] over `fractions` [n] (default: n equal steps in [0, 1])."""
    n = scores.shape[-1]
    if fractions is None:
        fractions = jnp.linspace(0.0, 1.0, n)
    dx = jnp.diff(fractions)  # explicit broadcasting: jnp.trapezoid relies on rank promotion
    mid = (scores[..., 1:] + scores[..., :-1]) / 2
    return (mid * jnp.broadcast_to(dx, mid.shape)).sum(-1)


def gaussian_blur(x: jax.Array, sigma: float = 5.0) -> jax.Array:
    """Gaussian blur of images [b, h, w, c], per channel, edges replicated.

    RISE's insertion baseline (its kernel: 11 px, sigma 5). The kernel has
    radius ceil(3 sigma), clipped to the image size.
    """
    b, h, w, c = x.shape
    radius = int(min(np.ceil(3 * sigma), max(h, w) - 1))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = jnp.asarray(k / k.sum(), x.dtype)
    # Edge padding instead of zeros, so the borders do not darken.
    y = jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
    dn = ("NHWC", "HWIO", "NHWC")
    kh = jnp.broadcast_to(k[:, None, None, None], (k.shape[0], 1, 1, c))
    kw = jnp.broadcast_to(k[None, :, None, None], (1, k.shape[0], 1, c))
    y = jax.lax.conv_general_dilated(y, kh, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c)
    return jax.lax.conv_general_dilated(y, kw, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c)


def _baseline_image(baseline: Baseline, x: jax.Array, sigma: float) -> jax.Array:
    if isinstance(baseline, str):
        if baseline == "zeros":
            return jnp.zeros_like(x)
        if baseline == "blur":
            return gaussian_blur(x, sigma)
        raise ValueError(
            f"baseline: expected 'zeros', 'blur', a number, an array or a function; got {baseline!r}"
        )
    if callable(baseline):
        return jnp.asarray(baseline(x), x.dtype)
    return jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)


def _curve_fn(*, steps, insert, baseline, reduce, output, chunk_size, blur_sigma):
    """The pure, unjitted `(fn, x, attribution, target) -> Curves`."""

    def curves(fn, x, attribution, target):
        b, h, w, _ = x.shape
        n = h * w
        saliency = pixel_map(attribution, (h, w), reduce).reshape(b, n)
        # rank[i, p] = position of pixel p when sorted most important first.
        rank = jnp.argsort(jnp.argsort(-saliency, axis=1, stable=True), axis=1).reshape(b, h, w, 1)
        base = _baseline_image(baseline, x, blur_sigma)
        counts = (jnp.arange(steps + 1) * n + steps // 2) // steps  # pixels changed at each step

        def score_at(count):
            top = rank < count  # [b, h, w, 1]
            image = jnp.where(top, x, base) if insert else jnp.where(top, base, x)
            out = fn(image)
            if output == "probability":
                out = jax.nn.softmax(out, axis=-1)
            return select_scores(out, target).astype(jnp.float32)

        scores = jax.lax.map(score_at, counts, batch_size=chunk_size).T  # [b, steps + 1]
        fractions = counts.astype(jnp.float32) / n
        return Curves(fractions, scores, auc(scores, fractions))

    return curves


def _curves(fn, *, insert, steps, baseline, reduce, output, chunk_size, blur_sigma):
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int | np.integer) or chunk_size < 1):
        raise ValueError(f"chunk_size: expected a positive int or None, got {chunk_size!r}")
    check_choice("output", output, OUTPUTS)
    impl = _curve_fn(
        steps=steps, insert=insert, baseline=baseline, reduce=reduce, output=output,
        chunk_size=chunk_size, blur_sigma=blur_sigma,
    )
    # A Model goes through jit as a pytree argument, so its params are inputs,
    # not constants baked into the program; any other callable is closed over.
    if isinstance(fn, Model):
        run = jax.jit(impl)
    else:
        jitted = jax.jit(lambda x, a, t: impl(fn, x, a, t))
        run = lambda _, x, a, t: jitted(x, a, t)  # noqa: E731

    def evaluate(x: jax.Array, attribution: jax.Array, target: Any = None) -> Curves:
        x = check_input(x, fn.input_spec if isinstance(fn, Model) else None, "x")
        if np.ndim(x) != 4:
            raise ValueError(f"x: expected images [b, h, w, c], got shape {list(np.shape(x))}")
        t = normalize_target(target, x.shape[0])
        if t is not None and t.ndim != 1:
            raise ValueError(f"target: expected an int or int [b], got shape {list(t.shape)}")
        if t is None and output == "probability":
            raise ValueError("target: needed with output='probability'; pass output='score' for a score fn [b]")
        if np.shape(attribution)[0] != x.shape[0]:
            raise ValueError(
                f"attribution: expected a batch of {x.shape[0]} maps like x, "
                f"got shape {list(np.shape(attribution))}"
            )
        check_target_range(jax.eval_shape(fn, x), t)
        return run(fn, x, attribution, t)

    return evaluate


def deletion(
    fn: Callable[[jax.Array], jax.Array],
    *,
    steps: int = 32,
    baseline: Baseline = "zeros",
    reduce: str = "sum",
    output: str = "probability",
    chunk_size: int | None = None,
    blur_sigma: float = 5.0,
) -> Callable[..., Curves]:
    """Deletion curves: remove the most important pixels first; lower AUC is better.

    Args:
      fn: a model or function, x [b, h, w, c] -> logits [b, classes] (or
        scores [b] with `output="score"` and no target).
      steps: number of equal fractions; the curve has `steps + 1` points, from
        the full image (0 removed) to the baseline (all removed).
      baseline: what a removed pixel becomes: "zeros" (default), "blur"
        (Gaussian blur of the image, sigma `blur_sigma`), a number, an array
        broadcastable to x, or a function x -> baseline image.
      reduce: ranking of [b, h, w, c] maps by the "sum" or "abs" (sum of
        |values|) over channels. Maps [b, h', w'] (CAM) are ranked as they are;
        maps at a lower resolution are upsampled bilinearly first.
      output: "probability" scores the softmax probability of the target class;
        "score" scores `fn`'s output itself (logit, or a score with no target),
        as in `attribution.occlusion`.
      chunk_size: steps evaluated at once (each step is a batch of b images);
        None evaluates all `steps + 1` at once.
      blur_sigma: sigma in pixels of the "blur" baseline.

    Returns:
      `evaluate(x, attribution, target=None) -> Curves`, jitted: x [b, h, w, c],
      attribution as above, target an int or int [b]. Pixels of equal
      attribution are removed in row-major order.
    """
    return _curves(
        fn, insert=False, steps=steps, baseline=baseline, reduce=reduce, output=output,
        chunk_size=chunk_size, blur_sigma=blur_sigma,
    )


def insertion(
    fn: Callable[[jax.Array], jax.Array],
    *,
    steps: int = 32,
    baseline: Baseline = "blur",
    reduce: str = "sum",
    output: str = "probability",
    chunk_size: int | None = None,
    blur_sigma: float = 5.0,
) -> Callable[..., Curves]:
    """Insertion curves: reveal the most important pixels first; higher AUC is better.

    The curve starts at the baseline image (default: the blurred image, as in
    RISE) and ends at the full image. Arguments are those of `deletion`.
    """
    return _curves(
        fn, insert=True, steps=steps, baseline=baseline, reduce=reduce, output=output,
        chunk_size=chunk_size, blur_sigma=blur_sigma,
    )
