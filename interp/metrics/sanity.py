"""Model-randomization sanity check (Adebayo et al., 2018) and rank correlation on device.

An explanation that depends on what the model learned must change when the
weights are destroyed. Layers are re-initialized from the top (logits) down,
cumulatively ("cascading") or one at a time ("independent"); after each step
the attribution is recomputed and compared with the original one by Spearman
rank correlation, of absolute values and signed, as in the paper:

    result = model_randomization(lambda m: saliency(m), model,
                                 ["logits", "conv4", "conv3", "conv2", "conv1"],
                                 x, labels, key=jax.random.key(0))
    result.spearman_abs   # [5, b]: row i after randomizing layers[: i + 1]

Randomization returns changed copies (models as data); the given model is
never modified. All steps run in one jitted `jax.lax.map`, so only one
randomized copy of the parameters is alive at a time.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp.nets.adapter import Model, as_model

Method = Callable[[Model], Callable[..., jax.Array]]


def _ranks(v: jax.Array) -> jax.Array:
    """Ranks 0..n-1 of a vector [n], ties given their average rank (as scipy's "average")."""
    s = jnp.sort(v)
    lo = jnp.searchsorted(s, v, side="left", method="sort")
    hi = jnp.searchsorted(s, v, side="right", method="sort")
    return (lo + hi - 1).astype(jnp.float32) / 2


@jax.jit
def pearson(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pearson correlation per example of a, b [n, ...] (flattened after the batch axis) -> [n].

    NaN where either example is constant (zero variance), as scipy.
    """
    a = jnp.reshape(a, (a.shape[0], -1)).astype(jnp.float32)
    b = jnp.reshape(b, (b.shape[0], -1)).astype(jnp.float32)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(1) / jnp.sqrt((a * a).sum(1) * (b * b).sum(1))


@jax.jit
def spearman(a: jax.Array, b: jax.Array) -> jax.Array:
    """Spearman rank correlation per example of a, b [n, ...] -> [n].

    The Pearson correlation of the ranks; ranks come from a sort and two
    `searchsorted`s, so ties get their average rank exactly as
    `scipy.stats.spearmanr` (zeros of a ReLU net's gradient do tie). O(m log m)
    per example of m values, vmapped over the batch.
    """
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"spearman: expected maps of one shape, got {list(np.shape(a))} and {list(np.shape(b))}"
        )
    ranks = jax.vmap(_ranks)
    return pearson(ranks(jnp.reshape(a, (a.shape[0], -1))), ranks(jnp.reshape(b, (b.shape[0], -1))))


def _randomized(model: Model, layers: tuple[str, ...], x, key: jax.Array, active: jax.Array, bias: str) -> Model:
    """`model` with layer j redrawn where `active[j]` (bool [len(layers)]), as `Model.reinitialize` draws it.

    The noise does not depend on which other layers are redrawn, so cascading
    step k equals `randomize_layers(model, layers[:k + 1], x, key=key)` and
    independent step k equals `randomize_layers(model, [layers[k]], x, key=key)`.
    """
    return model.reinitialize(x, layers, key, bias=bias, where=active)


def _check_layers(model: Model, x, layers: tuple[str, ...]) -> None:
    """Raises the adapter's `ValueError` for a layer that is unknown or owns no parameters, outside jit."""
    for layer in layers:
        model.layer_params(x, layer)


_randomized_jit = jax.jit(_randomized, static_argnames=("layers", "bias"))


def randomize_layers(
    model: Any,
    layers: Sequence[str],
    x: jax.Array,
    *,
    key: jax.Array,
    variables: Any = None,
    bias: str = "random",
) -> Model:
    """A copy of the model with the parameters of `layers` re-initialized at random.

    Args:
      model: a `Model`, or a Linen module with its `variables` (see `as_model`).
      layers: layer (tap) names owning parameters ("conv1", "logits",
        "layer1.0.conv1"; see `interp.nets.Model.layer_params`).
      x: an input [b, ...] (or its shape), to find the layers' parameters.
      key: PRNG key; the same key gives the same copy.
      variables: the Linen variables when `model` is a module.
      bias: "random" (biases redrawn like weights; zero biases stay zero),
        "zero", or "keep".

    Returns:
      A new `Model`; `model` is unchanged. An empty `layers` returns equal params.
    """
    model = as_model(model, variables)
    layers = tuple(layers)
    _check_layers(model, x, layers)
    return _randomized_jit(model, layers, x, key, jnp.ones((len(layers),), bool), bias)


@functools.lru_cache(maxsize=32)
def _runner(
    method: Method, layers: tuple[str, ...], mode: str, bias: str, reduce: str | None, return_maps: bool
):
    """The jitted check, cached so that repeated calls with one method (and any
    model of the same architecture: the model is an argument) compile once."""
    steps = jnp.arange(len(layers))
    chosen = steps[:, None] >= steps[None, :] if mode == "cascading" else steps[:, None] == steps[None, :]

    def prepare(a):
        if reduce is None or a.ndim != 4:  # [b, h, w] maps (CAM) have no channels
            return a
        return jnp.abs(a).sum(-1) if reduce == "abs" else a.sum(-1)

    @jax.jit
    def run(model, x, target, key):
        original = method(model)(x, target)

        def step(active):
            a = method(_randomized(model, layers, x, key, active, bias))(x, target)
            o, r = prepare(original), prepare(a)
            scores = (spearman(jnp.abs(o), jnp.abs(r)), spearman(o, r), pearson(o, r))
            return scores + ((a,) if return_maps else ())

        return original, jax.lax.map(step, chosen)

    return run


class Randomization(NamedTuple):
    """Similarity of randomized-model attributions to the original, per layer step and example.

    Attributes:
      layers: the layer names, row i is after randomizing layers[: i + 1]
        (cascading) or layers[i] alone (independent).
      spearman_abs: float32 [layers, b], Spearman correlation of |maps|.
      spearman: float32 [layers, b], Spearman correlation of signed maps.
      pearson: float32 [layers, b], Pearson correlation of signed maps.
      maps: the randomized attributions [layers, b, ...] with `return_maps`, else None.
      original: the original attribution [b, ...].
    """

    layers: tuple[str, ...]
    spearman_abs: jax.Array
    spearman: jax.Array
    pearson: jax.Array
    maps: jax.Array | None
    original: jax.Array


def model_randomization(
    method: Method,
    model: Any,
    layers: Sequence[str],
    x: jax.Array,
    target: Any,
    *,
    key: jax.Array,
    variables: Any = None,
    mode: str = "cascading",
    bias: str = "random",
    reduce: str | None = None,
    return_maps: bool = False,
) -> Randomization:
    """Model-randomization test: how much do the maps change as layers are randomized?

    Args:
      method: `method(model) -> attribute(x, target)`, e.g. `lambda m: saliency(m)`
        or `lambda m: grad_cam(m, "relu4")`; it receives each randomized copy.
      model: a `Model`, or a Linen module with `variables`.
      layers: layer (tap) names owning parameters, ordered from the top (logits) down.
      x: inputs [b, ...].
      target: passed to `attribute` (an int or int [b]; None for a score fn).
      key: PRNG key for the randomization (deterministic for a fixed key).
      variables: the Linen variables when `model` is a module.
      mode: "cascading" (cumulative from the top) or "independent" (one layer at a time).
      bias: how biases are randomized, see `randomize_layers`.
      reduce: None correlates the maps as they are; "sum" or "abs" first reduce
        the last (channel) axis of [b, h, w, c] maps (e.g. "abs" for the
        abs-sum gradient images of the paper); [b, h, w] maps are left as they are.
      return_maps: also return every randomized map [layers, b, ...].

    Returns:
      A `Randomization`; correlations are NaN where a map is constant.
    """
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode: expected 'cascading' or 'independent', got {mode!r}")
    if reduce not in (None, "sum", "abs"):
        raise ValueError(f"reduce: expected None, 'sum' or 'abs', got {reduce!r}")
    model = as_model(model, variables)
    layers = tuple(layers)
    _check_layers(model, x, layers)
    run = _runner(method, layers, mode, bias, reduce, return_maps)
    original, out = run(model, x, target, key)
    maps = out[3] if return_maps else None
    return Randomization(layers, out[0], out[1], out[2], maps, original)
