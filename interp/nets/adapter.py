"""One adapter from any model to the pure functions every method uses.

A `Model` is a pure function `apply(params, x)` together with its `params`. It
is built from a Flax Linen module and its variables, a Flax NNX module, or a
plain JAX function, and offers:

  * `model(x)`: the forward pass;
  * `model.activations(x, layers)`: named activations (layers marked with `tap`);
  * `model.activations_and_grads(x, layers, score_fn)`: the activations and the
    gradient of per-example scores with respect to them;
  * `model.layer_shapes(x)`, `model.receptive_fields(x)`: static analyses of
    the named layers.

Layers are found by tracing the function to a jaxpr and looking for `tap`
marks, so a hand-written function marks its layers exactly as the zoo does.
A `Model` is a pytree (its params are the leaves), so it can be passed to and
returned from `jit`, `vmap` and `grad`; changing it returns a copy.
"""

import collections
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax import linen as nn

from interp.ops import jaxprs

Params = Any
ScoreFn = Callable[[jax.Array], jax.Array]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Model:
    """A pure function with its parameters, whose layers can be read by name.

    Attributes:
      apply_fn: `apply_fn(params, x) -> outputs`, batch-first.
      params: any pytree of arrays (for Linen, the whole variables dict).
      input_spec: the per-example input shape, `None` for any size in that
        dimension (e.g. `(None, None, 3)`), or `None` to accept any input.
    """

    apply_fn: Callable[[Params, jax.Array], Any] = dataclasses.field(metadata=dict(static=True))
    params: Params
    input_spec: tuple[int | None, ...] | None = dataclasses.field(
        default=None, metadata=dict(static=True)
    )

    def __call__(self, x: jax.Array) -> Any:
        """The forward pass: `x` [b, ...] to the outputs (e.g. logits [b, classes])."""
        return self.apply_fn(self.params, check_input(x, self.input_spec))

    def replace(self, **changes) -> "Model":
        """A copy with some fields changed, e.g. `model.replace(params=new)`."""
        return dataclasses.replace(self, **changes)

    def layer_shapes(self, x: jax.Array | jax.ShapeDtypeStruct) -> dict[str, jax.ShapeDtypeStruct]:
        """Every named layer, in execution order, with its output shape for input `x`."""
        closed, _ = self._trace(x)
        return _tap_shapes(closed)

    def layer_shape(self, x: jax.Array | jax.ShapeDtypeStruct, layer: str) -> jax.ShapeDtypeStruct:
        """The output shape of the named `layer` for input `x`.

        Raises:
          ValueError: `layer` is unknown; the message lists the known layers.
        """
        shapes = self.layer_shapes(x)
        if layer not in shapes:
            raise ValueError(f"layer: unknown layer {layer!r}; known layers: {', '.join(shapes)}")
        return shapes[layer]

    def spatial_layer_shape(self, x: jax.Array | jax.ShapeDtypeStruct, layer: str,
                            argument: str = "layer") -> jax.ShapeDtypeStruct:
        """`layer_shape`, checked to be a spatial layer [b, h, w, c] (`argument` names the caller's argument)."""
        shape = self.layer_shape(x, layer)
        if len(shape.shape) != 4:
            raise ValueError(f"{argument}: {layer!r} is not a spatial layer [b, h, w, c]; "
                             f"its shape is {list(shape.shape)}")
        return shape

    def layer_names(self, x: jax.Array | jax.ShapeDtypeStruct) -> tuple[str, ...]:
        """Every named layer, in execution order."""
        return tuple(self.layer_shapes(x))

    def receptive_fields(self, x: jax.Array | jax.ShapeDtypeStruct, *,
                         spatial_axes: tuple[int, int] = (1, 2)) -> dict[str, Any]:
        """`nets.receptive_fields(model, x)`: every named layer's `ReceptiveField`, in execution order."""
        from interp.nets.receptive_field import receptive_fields  # which builds on this module

        return receptive_fields(self, x, spatial_axes=spatial_axes)

    def activations(self, x: jax.Array, layers: str | Sequence[str]) -> dict[str, jax.Array]:
        """The outputs of the named layers for input `x`, keyed by name.

        Args:
          x: inputs [b, ...].
          layers: one layer name or several.

        Returns:
          `{name: activation}`, each batch-first as the layer produced it.
        """
        closed, out_shape, wanted = self._traced(x, layers)
        acts, _ = self._evaluate(closed, out_shape, x, wanted, perturb=None)
        return acts

    def activations_and_grads(
        self, x: jax.Array, layers: str | Sequence[str], score_fn: ScoreFn
    ) -> tuple[jax.Array, dict[str, jax.Array], dict[str, jax.Array]]:
        """Named activations and the gradient of per-example scores with respect to them.

        Args:
          x: inputs [b, ...].
          layers: one layer name or several.
          score_fn: maps the model's outputs to per-example scores [b], e.g.
            `lambda logits: logits[jnp.arange(b), targets]`.

        Returns:
          `(scores [b], activations, gradients)`; `gradients[name]` has the shape
          of `activations[name]`, and its example `i` is d scores[i] / d
          activations[name][i] (examples must not interact, as in any network
          in inference mode).
        """
        closed, out_shape, wanted = self._traced(x, layers)
        batch = np.shape(x)[0]

        def total_score(perturbations):
            acts, outputs = self._evaluate(closed, out_shape, x, wanted, perturbations)
            scores = score_fn(outputs)
            if jnp.shape(scores) != (batch,):
                raise ValueError(
                    f"score_fn: expected per-example scores of shape ({batch},), "
                    f"got {jnp.shape(scores)}"
                )
            return scores.sum(), (scores, acts)

        zeros = {n: jnp.zeros(s.shape, s.dtype) for n, s in wanted.items()}
        grads, (scores, acts) = jax.grad(total_score, has_aux=True)(zeros)
        return scores, acts, grads

    def _trace(self, x):
        x = check_input(x, self.input_spec)
        return jax.make_jaxpr(self.apply_fn, return_shape=True)(self.params, x)

    def _traced(self, x, layers):
        """The model traced once for `x`, its output shape, and the shapes of `layers`."""
        closed, out_shape = self._trace(x)
        shapes = _tap_shapes(closed)
        names = _as_names(layers)
        unknown = [n for n in names if n not in shapes]
        if unknown:
            raise ValueError(
                f"layers: unknown layer {unknown[0]!r}; known layers: {', '.join(shapes)}"
            )
        return closed, out_shape, {n: shapes[n] for n in names}

    def _evaluate(self, closed, out_shape, x, wanted, perturb):
        """Evaluates the traced model, recording (and optionally perturbing) `wanted` layers."""
        acts = {}

        def select(eqn):
            return jaxprs.tap_name(eqn) in wanted

        def record(eqn, invals):
            name = jaxprs.tap_name(eqn)
            acts[name] = invals[0]
            return [invals[0] if perturb is None else invals[0] + perturb[name]]

        flat_args = jax.tree.leaves((self.params, x))
        flat_out = jaxprs.interpret(closed, flat_args, select, record)
        return acts, jax.tree.unflatten(jax.tree.structure(out_shape), flat_out)


def _tap_shapes(closed) -> dict[str, jax.ShapeDtypeStruct]:
    """Each `tap`-named layer of a traced function with its shape, in execution order.

    Raises:
      ValueError: a name is used twice.
    """
    taps = [(jaxprs.tap_name(e), e) for e in jaxprs.equations(closed.jaxpr) if jaxprs.tap_name(e) is not None]
    repeated = sorted(n for n, k in collections.Counter(n for n, _ in taps).items() if k > 1)
    if repeated:
        raise ValueError(f"layer names must be unique; repeated: {', '.join(repeated)}")
    return {n: jax.ShapeDtypeStruct(e.outvars[0].aval.shape, e.outvars[0].aval.dtype) for n, e in taps}


def check_input(x, spec: tuple[int | None, ...] | None, name: str = "x"):
    """Checks a batch-first input against a per-example spec; returns `x` unchanged.

    Shape and dtype are checked always; NaN and infinity only where `x` holds
    concrete values (outside `jit`), since a traced value has none to check.

    Raises:
      ValueError: naming `name`, what was expected and what was given.
    """
    shape = tuple(np.shape(x))
    if spec is not None:
        expected = "[batch, " + ", ".join("*" if d is None else str(d) for d in spec) + "]"
        fits = len(shape) == len(spec) + 1 and all(
            d is None or d == s for d, s in zip(spec, shape[1:])
        )
        if not fits:
            raise ValueError(f"{name}: expected shape {expected}, got {list(shape)}")
    dtype = getattr(x, "dtype", None)
    if dtype is not None and not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name}: expected a floating-point array, got dtype {dtype}")
    if not isinstance(x, (jax.core.Tracer, jax.ShapeDtypeStruct)):
        if not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _as_names(layers: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(layers, str):
        return (layers,)
    names = tuple(layers)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"layers: expected a layer name or a non-empty list of names, got {layers!r}")
    return names


@dataclasses.dataclass(frozen=True)
class _LinenApply:
    module: nn.Module
    kwargs: tuple[tuple[str, Any], ...]

    def __call__(self, variables, x):
        return self.module.apply(variables, x, **dict(self.kwargs))


@dataclasses.dataclass(frozen=True)
class _NnxApply:
    graphdef: Any

    def __call__(self, state, x):
        return nnx.merge(self.graphdef, state)(x)


@dataclasses.dataclass(frozen=True)
class _PlainApply:
    fn: Callable[[jax.Array], Any]

    def __call__(self, params, x):
        del params
        return self.fn(x)


def from_linen(
    module: nn.Module,
    variables: Mapping[str, Any],
    input_spec: tuple[int | None, ...] | None = None,
    **apply_kwargs,
) -> Model:
    """A `Model` from a Linen module and its variables (inference mode by default).

    Args:
      module: the Linen module.
      variables: its variables (`{'params': ..., 'batch_stats': ...}`).
      input_spec: per-example input shape; defaults to the module's
        `input_spec` attribute when it has one (the zoo models do).
      **apply_kwargs: passed to `module.apply` (e.g. `train=False`).
    """
    spec = input_spec if input_spec is not None else getattr(module, "input_spec", None)
    return Model(_LinenApply(module, tuple(sorted(apply_kwargs.items()))), variables, spec)


def from_nnx(module: nnx.Module, input_spec: tuple[int | None, ...] | None = None) -> Model:
    """A `Model` from an NNX module; its state becomes the params."""
    graphdef, state = nnx.split(module)
    return Model(_NnxApply(graphdef), state, input_spec)


def from_function(
    fn: Callable[..., Any],
    params: Params = None,
    input_spec: tuple[int | None, ...] | None = None,
) -> Model:
    """A `Model` from a plain JAX function: `fn(x)`, or `fn(params, x)` when `params` is given."""
    if params is None:
        return Model(_PlainApply(fn), (), input_spec)
    return Model(fn, params, input_spec)


def as_model(model: Any, variables: Mapping[str, Any] | None = None, **kwargs) -> Model:
    """Turns a `Model`, Linen module (with `variables`), NNX module or function into a `Model`."""
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        if variables is None:
            raise ValueError("variables: a Linen module needs its variables")
        return from_linen(model, variables, **kwargs)
    if isinstance(model, nnx.Module):
        return from_nnx(model, **kwargs)
    if callable(model):
        return from_function(model, variables, **kwargs)
    raise TypeError(f"model: expected a Model, Linen or NNX module, or a callable; got {type(model)}")
