"""The render loop: gradient ascent on an objective through a parameterization and transforms.

`make_render(objective, ...)` returns a pure function `(model, key) ->
Rendering` that runs every step inside `lax.scan`, so a whole render is one
compiled program; `render` jits and calls it. `render_each` (and its pure
form `make_render_each`) vmaps it over a family of objectives (every channel of a layer, every position of an
activation grid) so they render in one call, sharded over a device mesh when
one is given.

`render`, `render_each` and the functions built on them take their PRNG key
as the keyword-only `key=`, as every `interp` function that draws does; the
pure forms (`make_render`, `make_render_each`) take it positionally, so they
compose with `vmap` axes and `jit` shardings.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from interp import nets, sharding
from interp.featviz import param as param_lib
from interp.featviz import transforms as transforms_lib
from interp.featviz.objectives import INPUT, Objective, as_objective
from interp.ops import for_speed


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Rendering:
    """The result of a render (a pytree: `thresholds` is static).

    Attributes:
      images: [T, b, H, W, 3] in [0, 1], the images after each of the `T`
        thresholds (with a leading objective axis from `render_each`).
      thresholds: the step counts at which `images` were taken.
      scores: [steps, b] the objective of each image at each step, as the
        optimizer saw it (on the transformed image, before that step's update).
    """

    images: jax.Array
    thresholds: tuple[int, ...] = dataclasses.field(metadata={"static": True})
    scores: jax.Array


def _thresholds(steps: int, thresholds: Sequence[int] | None) -> tuple[int, ...]:
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps!r}")
    chosen = (steps,) if thresholds is None else tuple(int(t) for t in thresholds)
    if not chosen or list(chosen) != sorted(set(chosen)) or chosen[0] < 1 or chosen[-1] > steps:
        raise ValueError(f"thresholds: expected increasing step counts in 1..{steps}, got {thresholds}")
    return chosen


def make_render(
    objective: Objective | str,
    *,
    param: param_lib.Param | None = None,
    transforms: transforms_lib.Transform | None = None,
    optimizer: optax.GradientTransformation | None = None,
    steps: int = 512,
    thresholds: Sequence[int] | None = None,
) -> Callable[..., Rendering]:
    """A pure, jit- and vmap-able render: `(model, key, init_key=None) -> Rendering`.

    `key` draws the start image and each step's transform; `init_key`, when
    given, draws the start image instead.

    Args:
      objective: what to maximize (summed over the batch), or `"layer:channel"`.
      param: the image parameterization; default `param.image(128)` (Fourier,
        decorrelated color), as in Lucid.
      transforms: applied to the image before the model each step; default
        `transforms.standard_transforms()`.
      optimizer: an optax optimizer; default `optax.adam(0.05)`, as in Lucid.
      steps: optimization steps.
      thresholds: steps after which the image is kept; default `(steps,)`.
    """
    objective = as_objective(objective)
    param = param_lib.image(128) if param is None else param
    transforms = transforms_lib.standard_transforms() if transforms is None else transforms
    optimizer = optax.adam(0.05) if optimizer is None else optimizer
    thresholds = _thresholds(steps, thresholds)
    layers = tuple(n for n in objective.layers if n != INPUT)

    def scores_of(model, params, key):
        image = param.to_image(params)
        acts = dict(model.activations(transforms(key, image), layers)) if layers else {}
        acts[INPUT] = image
        return objective(acts)

    def loss(params, model, key):
        scores = scores_of(model, params, key)
        return -scores.sum(), scores

    # The step runs inside `lax.scan`, where XLA:CPU takes a slow path for
    # backward convolutions unless their kernels are transposed first; the
    # inner `for_speed` routes a plain function's max-pools before `grad`.
    loss_grad = for_speed(jax.grad(for_speed(loss), has_aux=True))

    def step(model, carry, key):
        params, opt_state = carry
        grads, scores = loss_grad(params, model, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), scores

    def run(model: nets.Model, key: jax.Array, init_key: jax.Array | None = None) -> Rendering:
        model = nets.as_model(model)
        start_key, steps_key = jax.random.split(key)
        params = param.init(start_key if init_key is None else init_key)
        carry = (params, optimizer.init(params))
        # Keys by step number, so a render's first t steps do not depend on `steps`.
        step_keys = jax.vmap(lambda i: jax.random.fold_in(steps_key, i))(jnp.arange(steps))
        images, scores, done = [], [], 0
        for threshold in thresholds:
            carry, segment = jax.lax.scan(lambda c, k: step(model, c, k), carry, step_keys[done:threshold])
            images.append(param.to_image(carry[0]))
            scores.append(segment)
            done = threshold
        return Rendering(jnp.stack(images), thresholds, jnp.concatenate(scores))

    return run


def render(model: Any, objective: Objective | str, *, key: jax.Array, **options) -> Rendering:
    """Renders `objective` on `model` (a `nets.Model` or anything `nets.as_model` takes).

    Example:
      >>> r = render(model, "relu3:5", key=jax.random.key(0), param=param.image(64), steps=256)
      >>> r.images[-1]   # [1, 64, 64, 3]

    `options` are `make_render`'s keyword arguments.
    """
    return jax.jit(make_render(objective, **options))(nets.as_model(model), key)


def make_render_each(
    objective_of: Callable[[jax.Array], Objective], **options
) -> Callable[[nets.Model, Any, jax.Array], Rendering]:
    """A pure, jit-able render of one objective per index: `(model, indices, key, init_keys=None) -> Rendering`.

    Every objective starts from its own image but sees the same transform at
    each step, as the images of a Lucid batch do: the transforms then act on
    the whole batch at once instead of as per-objective gathers. `indices`,
    `key` and `init_keys` are as in `render_each`; `options` are `make_render`'s.
    """
    thresholds = _thresholds(options.get("steps", 512), options.get("thresholds"))

    def run(model: nets.Model, indices: Any, key: jax.Array, init_keys: jax.Array | None = None) -> Rendering:
        n = _count(indices)
        transforms_key, starts_key = jax.random.split(key)
        if init_keys is None:
            # By position, so objective i starts from the same image whatever n is
            # (render_each pads n to fill a mesh).
            init_keys = jax.vmap(lambda i: jax.random.fold_in(starts_key, i))(jnp.arange(n))

        def one(index, init_key):
            rendering = make_render(objective_of(index), **options)(model, transforms_key, init_key)
            return rendering.images, rendering.scores

        images, scores = jax.vmap(one)(indices, init_keys)
        return Rendering(images, thresholds, scores)

    return run


def _count(indices: Any) -> int:
    leaves = jax.tree.leaves(indices)
    lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if not leaves or len(lengths) != 1 or None in lengths:
        raise ValueError("indices: expected arrays with a common leading axis, one entry per objective")
    return lengths.pop()


def render_each(
    model: Any,
    objective_of: Callable[[jax.Array], Objective],
    indices: Any,
    *,
    key: jax.Array,
    init_keys: jax.Array | None = None,
    mesh: jax.sharding.Mesh | None = None,
    **options,
) -> Rendering:
    """Renders one objective per index in a single compiled, vmapped call.

    Example, every channel of a layer:
      >>> r = render_each(model, lambda c: channel("conv3", c), jnp.arange(64), key=key, param=param.image(64))
      >>> r.images.shape   # [64, T, 1, 64, 64, 3]

    Args:
      model: as in `render`.
      objective_of: builds the objective for one index (a traced array).
      indices: [n, ...] one entry per objective (a pytree of arrays with a
        common leading axis also works, e.g. positions and vectors).
      key: draws each step's transform (shared by all objectives) and each
        objective's start image.
      init_keys: [n] keys, one per objective, to draw the start images from
        instead (a start that depends on the objective, not on its position:
        how `interp.sweep` makes its grouping invisible).
      mesh: shard the objectives over this mesh's 'data' axis
        (`interp.sharding.data_mesh()`); `n` is padded to a multiple of that
        axis's size and trimmed back.
      options: `make_render`'s keyword arguments.

    Returns:
      A `Rendering` whose arrays have a leading axis of length n. On a mesh
      over several processes, a padded n leaves them whole on every device;
      otherwise each process holds its devices' objectives, and
      `jax.experimental.multihost_utils.process_allgather(a, tiled=True)`
      gathers the whole array on every process.
    """
    model = nets.as_model(model)
    n = _count(indices)
    if init_keys is not None and np.shape(init_keys) != (n,):
        raise ValueError(f"init_keys: expected {n} keys (one per objective), got shape {np.shape(init_keys)}")
    run = make_render_each(objective_of, **options)
    if mesh is None:
        return jax.jit(run)(model, indices, key, init_keys)

    missing = -n % sharding.check_mesh(mesh).shape[sharding.AXIS]

    def pad(a):
        # Repeat the last objective so every device gets an equal share; trimmed below.
        a = jnp.asarray(a)
        return jnp.concatenate([a, jnp.repeat(a[-1:], missing, axis=0)]) if missing else a

    split, replicated = sharding.batch_sharding(mesh), sharding.replicated(mesh)
    padded_keys = None if init_keys is None else pad(init_keys)
    sharded = jax.jit(run, in_shardings=(replicated, split, replicated, split), out_shardings=split)
    rendering = sharded(model, jax.tree.map(pad, indices), key, padded_keys)
    if missing:
        # Gathered before trimming: a mesh with explicit axes refuses to slice a sharded axis unevenly.
        rendering = jax.device_put(rendering, replicated)
        rendering = Rendering(rendering.images[:n], rendering.thresholds, rendering.scores[:n])
    return rendering
