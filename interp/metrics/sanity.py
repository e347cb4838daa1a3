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
import zlib
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


def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _plan(params: Any, layers: Sequence[str]) -> list[int]:
    """For each leaf of `params`, the index in `layers` of the layer it belongs to (-1: none).

    A layer name is a path of keys under the `params` collection (Linen
    variables) or under the root (anything else), "/"-separated for nesting:
    "conv1", "layer1_0" (a whole ResNet block), "layer1_0/conv1".
    BatchNorm statistics and other collections are never randomized.
    """
    paths = [tuple(_key_name(k) for k in p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    root = ("params",) if isinstance(params, dict) and "params" in params else ()
    plan = []
    for path in paths:
        owner = -1
        if path[: len(root)] == root:
            rest = path[len(root) :]
            for j, name in enumerate(layers):
                parts = tuple(name.split("/"))
                if rest[: len(parts)] == parts:
                    owner = j
                    break
        plan.append(owner)
    for j, name in enumerate(layers):
        if j not in plan:
            known = sorted({p[len(root)] for p in paths if len(p) > len(root) and p[: len(root)] == root})
            raise ValueError(f"layers: no parameters under '{name}'; known layers: {', '.join(known)}")
    return plan


def _randomized(model: Model, layers: Sequence[str], key: jax.Array, active: jax.Array, bias: str) -> Model:
    """A copy of `model` whose parameters of layer j are redrawn where `active[j]` (bool [len(layers)]).

    Each tensor becomes N(0, 1) noise times the original tensor's standard
    deviation (its root-mean-square when the std is 0, e.g. a BatchNorm scale
    of ones; an all-zero tensor stays zero). The noise for leaf i (its index
    in the whole params tree) of layer `name` is drawn from
    fold_in(fold_in(key, crc32(name)), i), so it does not depend on which other
    layers are randomized: cascading step k equals
    `randomize_layers(model, layers[:k + 1], key=key)`, independent step k equals
    `randomize_layers(model, [layers[k]], key=key)`.
    """
    if bias not in ("random", "zero", "keep"):
        raise ValueError(f"bias: expected 'random', 'zero' or 'keep', got {bias!r}")
    plan = _plan(model.params, layers)
    flat, treedef = jax.tree_util.tree_flatten_with_path(model.params)
    leaves = []
    for i, ((path, leaf), owner) in enumerate(zip(flat, plan)):
        if owner < 0 or not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            leaves.append(leaf)
            continue
        if path and _key_name(path[-1]) == "bias" and bias != "random":
            new = leaf if bias == "keep" else jnp.zeros_like(leaf)
        else:
            std = jnp.std(leaf)
            scale = jnp.where(std > 0, std, jnp.sqrt(jnp.mean(jnp.square(leaf))))
            layer_key = jax.random.fold_in(key, zlib.crc32(layers[owner].encode()) & 0x7FFFFFFF)
            noise = jax.random.normal(jax.random.fold_in(layer_key, i), jnp.shape(leaf))
            new = (noise * scale).astype(jnp.asarray(leaf).dtype)
        leaves.append(jnp.where(active[owner], new, leaf))
    return model.replace(params=jax.tree_util.tree_unflatten(treedef, leaves))


_randomized_jit = jax.jit(_randomized, static_argnames=("layers", "bias"))


def randomize_layers(
    model: Any,
    layers: Sequence[str],
    *,
    key: jax.Array,
    variables: Any = None,
    bias: str = "random",
) -> Model:
    """A copy of the model with the parameters of `layers` re-initialized at random.

    Args:
      model: a `Model`, or a Linen module with its `variables` (see `as_model`).
      layers: parameter names ("conv1", "logits", "layer1_0" or "layer1_0/conv1").
      key: PRNG key; the same key gives the same copy.
      variables: the Linen variables when `model` is a module.
      bias: "random" (biases redrawn like weights; zero biases stay zero),
        "zero", or "keep".

    Returns:
      A new `Model`; `model` is unchanged. An empty `layers` returns equal params.
    """
    model = as_model(model, variables)
    layers = tuple(layers)
    _plan(model.params, layers)  # names checked outside jit, for a clear error
    return _randomized_jit(model, layers, key, jnp.ones((len(layers),), bool), bias)


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
            a = method(_randomized(model, layers, key, active, bias))(x, target)
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
      layers: parameter names ordered from the top (logits) down.
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
    _plan(model.params, layers)  # names checked here, outside jit, for a clear error
    run = _runner(method, layers, mode, bias, reduce, return_maps)
    original, out = run(model, x, target, key)
    maps = out[3] if return_maps else None
    return Randomization(layers, out[0], out[1], out[2], maps, original)
