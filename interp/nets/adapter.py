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
  * `model.layer_params(x, layer)`, `model.replace_layer_params(x, layer, values)`,
    `model.reinitialize(x, layers, key)`: a layer's parameters, by the same name.

Layers are found by tracing the function to a jaxpr and looking for `tap`
marks, so a hand-written function marks its layers exactly as the zoo does.
A layer *owns* the parameters that flow into its tap without passing through
another tap (a slice of the jaxpr back from the tap, stopped at other taps
and at the input): SmallCNN's `conv4` owns conv4's kernel and bias, `relu4`
owns none, ResNet's `layer1.0.bn1` owns that BatchNorm's scale and bias, and a
function's `tap(x @ w, "hidden")` owns `w`. Only trainable parameters are
owned: of Linen variables, the 'params' collection (BatchNorm statistics and
other collections belong to no layer).
A `Model` is a pytree (its params are the leaves), so it can be passed to and
returned from `jit`, `vmap` and `grad`; changing it returns a copy.
"""

import collections
import contextlib
import dataclasses
import functools
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import nnx
from jax.extend import core as jcore

from interp.ops import jaxprs

Params = Any
ScoreFn = Callable[[jax.Array], jax.Array]


@jax.tree_util.register_dataclass
# eq=False: a Model hashes and compares by identity (its params are arrays), so
# `jax.jit(model)` works as for any function, its params then compile in as
# constants; passing the model as an argument, `jax.jit(f)(model, x)`, shares one
# compiled program between models of one architecture.
@dataclasses.dataclass(frozen=True, eq=False)
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
        """The forward pass: `x` [b, ...] to the outputs (e.g. logits [b, classes]).

        Raises:
          ValueError: `x` does not fit `input_spec` or is an empty batch (see
            `check_input`), or the function fails on images that look NCHW.
        """
        x = check_input(x, self.input_spec)
        with layout_hint(x):
            return self.apply_fn(self.params, x)

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

    def shifted(self, x: jax.Array, offsets: Mapping[str, jax.Array]) -> Any:
        """The outputs with `offsets[name]` added to each named layer's activations (an intervention).

        Raises:
          ValueError: a layer name is unknown; the message lists the known layers.
        """
        closed, out_shape, wanted = self._traced(x, tuple(offsets))
        _, outputs = self._evaluate(closed, out_shape, x, wanted, dict(offsets))
        return outputs

    def layer_params(self, x: jax.Array | jax.ShapeDtypeStruct, layer: str) -> dict[str, jax.Array]:
        """The parameters `layer` owns (see the module docstring), keyed by path.

        Args:
          x: an input [b, ...] (or its shape), to trace the model with.
          layer: a tap name.

        Returns:
          `{path: array}` in the params' order; a path joins the keys below the
          trainable root with "/" (SmallCNN's `conv4` gives `conv4/kernel`,
          `conv4/bias`).

        Raises:
          ValueError: `layer` is unknown (the message lists the known layers)
            or owns no parameters (it lists the layers that do).
        """
        leaves = jax.tree.leaves(self.params)
        return {path: leaves[i] for i, path in self._owned(x, layer)}

    def param_owners(self, x: jax.Array | jax.ShapeDtypeStruct) -> dict[str, tuple[str, ...]]:
        """Every layer, in execution order, with the paths of the parameters it owns (`()` for none)."""
        return {name: tuple(path for _, path in owned) for name, owned in self._owners(x).items()}

    def replace_layer_params(self, x: jax.Array | jax.ShapeDtypeStruct, layer: str,
                             values: Mapping[str, jax.Array]) -> "Model":
        """A copy whose parameters owned by `layer` are `values` (keyed as `layer_params` keys them).

        Raises:
          ValueError: `layer` is unknown or owns no parameters, `values` does
            not name exactly the owned paths, or a value's shape or dtype
            differs from the parameter's.
        """
        owned = self._owned(x, layer)
        paths = [path for _, path in owned]
        if sorted(values) != sorted(paths):
            raise ValueError(f"values: expected the parameters of {layer!r} ({', '.join(paths)}), "
                             f"got {', '.join(values) or 'none'}")
        leaves, treedef = jax.tree.flatten(self.params)
        for i, path in owned:
            new, old = values[path], leaves[i]
            if jnp.shape(new) != jnp.shape(old) or jnp.result_type(new) != jnp.result_type(old):
                raise ValueError(f"values: {path!r} must be {jnp.result_type(old)} {list(jnp.shape(old))}, "
                                 f"got {jnp.result_type(new)} {list(jnp.shape(new))}")
            leaves[i] = new
        return self.replace(params=jax.tree.unflatten(treedef, leaves))

    def reinitialize(self, x: jax.Array | jax.ShapeDtypeStruct, layers: Sequence[str], key: jax.Array, *,
                     bias: str = "random", where: jax.Array | None = None) -> "Model":
        """A copy whose parameters owned by `layers` are redrawn at random.

        Each tensor becomes N(0, 1) noise times the original tensor's standard
        deviation (its root-mean-square when the std is 0, e.g. a BatchNorm
        scale of ones; an all-zero tensor stays zero). The noise of leaf `i`
        (its index in the whole params tree) owned by layer `name` is drawn
        from fold_in(fold_in(key, crc32(name)), i), so it does not depend on
        which other layers are redrawn. A parameter owned by several of
        `layers` counts as the first's.

        Args:
          x: an input [b, ...] (or its shape), to trace the model with.
          layers: tap names, each owning parameters.
          key: PRNG key; the same key gives the same copy.
          bias: "random" (biases, the leaves named `bias`, redrawn like
            weights), "zero", or "keep".
          where: optional bool [len(layers)], which of `layers` to redraw
            (may be traced, e.g. by a `lax.map` over subsets); default all.

        Raises:
          ValueError: an unknown layer, one without parameters, or a bad `bias`.
        """
        if bias not in ("random", "zero", "keep"):
            raise ValueError(f"bias: expected 'random', 'zero' or 'keep', got {bias!r}")
        layers = _as_names(layers) if layers else ()
        owner = {}
        for j, layer in enumerate(layers):
            for i, path in self._owned(x, layer):
                owner.setdefault(i, (j, path))
        where = jnp.ones((len(layers),), bool) if where is None else where
        leaves, treedef = jax.tree.flatten(self.params)
        for i, (j, path) in owner.items():
            leaf = leaves[i]
            if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
                continue
            if path.split("/")[-1] == "bias" and bias != "random":
                new = leaf if bias == "keep" else jnp.zeros_like(leaf)
            else:
                std = jnp.std(leaf)
                scale = jnp.where(std > 0, std, jnp.sqrt(jnp.mean(jnp.square(leaf))))
                layer_key = jax.random.fold_in(key, zlib.crc32(layers[j].encode()) & 0x7FFFFFFF)
                noise = jax.random.normal(jax.random.fold_in(layer_key, i), jnp.shape(leaf))
                new = (noise * scale).astype(jnp.result_type(leaf))
            leaves[i] = jnp.where(where[j], new, leaf)
        return self.replace(params=jax.tree.unflatten(treedef, leaves))

    def _owned(self, x, layer: str) -> list[tuple[int, str]]:
        """(leaf index in the params, path) of every parameter `layer` owns."""
        if not isinstance(layer, str):
            raise ValueError(f"layer: expected a layer name, got {layer!r}")
        owners = self._owners(x)
        if layer not in owners:
            raise ValueError(f"layer: unknown layer {layer!r}; known layers: {', '.join(owners)}")
        if not owners[layer]:
            with_params = [n for n, owned in owners.items() if owned]
            raise ValueError(f"layer: {layer!r} owns no parameters; layers with parameters: "
                             f"{', '.join(with_params) or 'none'}")
        return list(owners[layer])

    def _owners(self, x) -> dict[str, tuple[tuple[int, str], ...]]:
        """Every layer, in execution order, with the (leaf index, path) of the parameters it owns."""
        x = check_input(x, self.input_spec)
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)),
                                (self.params, x))
        leaves, treedef = jax.tree.flatten(abstract)
        with layout_hint(x):
            try:
                return _owners_cached(self.apply_fn, treedef, tuple(leaves), len(jax.tree.leaves(self.params)))
            except TypeError:  # an unhashable apply_fn: traced every time
                return _owners_cached.__wrapped__(self.apply_fn, treedef, tuple(leaves),
                                                  len(jax.tree.leaves(self.params)))

    def _trace(self, x):
        x = check_input(x, self.input_spec)
        with layout_hint(x):
            return jax.make_jaxpr(self.apply_fn, return_shape=True)(self.params, x)

    def _traced(self, x, layers):
        """The model traced once for `x`, its output shape, and the shapes of `layers`."""
        closed, out_shape = self._trace(x)
        shapes = _tap_shapes(closed)
        names = _as_names(layers)
        _check_known(names, shapes)
        return closed, out_shape, {n: shapes[n] for n in names}

    def _evaluate(self, closed, out_shape, x, wanted, perturb):
        """Evaluates the traced model, recording (and optionally perturbing) `wanted` layers."""
        out_tree = jax.tree.structure(out_shape)
        flat_out, acts = _evaluate_taps(closed, jax.tree.leaves((self.params, x)), wanted, perturb)
        return acts, jax.tree.unflatten(out_tree, flat_out)


def with_activations(fn: Callable[..., Any], layers: Sequence[str], *args) -> tuple[Any, dict[str, jax.Array]]:
    """`fn(*args)` (pytrees in and out) and the values of its taps `layers`, from one evaluation.

    For passes a `Model` does not describe, e.g. a training-mode forward pass
    with dropout keys and mutable collections. The activations are
    differentiable like any value of `fn`.

    Raises:
      ValueError: a layer is unknown; the message lists the known layers.
    """
    closed, leaves, unflatten = jaxprs.trace_flat(fn, *args)
    _check_known(layers, _tap_shapes(closed))
    flat_out, acts = _evaluate_taps(closed, leaves, layers, perturb=None)
    return unflatten(flat_out), acts


def _check_known(names: Sequence[str], shapes: Mapping[str, Any]) -> None:
    unknown = [n for n in names if n not in shapes]
    if unknown:
        raise ValueError(f"layers: unknown layer {unknown[0]!r}; known layers: {', '.join(shapes)}")


def _evaluate_taps(closed, leaves, wanted, perturb) -> tuple[list[Any], dict[str, jax.Array]]:
    """Evaluates `closed` on `leaves`, recording the taps in `wanted` (plus `perturb[name]` when given)."""
    acts = {}

    def select(eqn):
        return jaxprs.tap_name(eqn) in wanted

    def record(eqn, invals):
        name = jaxprs.tap_name(eqn)
        acts[name] = invals[0]
        return [invals[0] if perturb is None else invals[0] + perturb[name]]

    return jaxprs.interpret(closed, leaves, select, record), acts


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


@functools.lru_cache(maxsize=64)
def _owners_cached(apply_fn, treedef, leaves, num_params) -> dict[str, tuple[tuple[int, str], ...]]:
    params, x = jax.tree.unflatten(treedef, leaves)
    closed = jax.make_jaxpr(apply_fn)(params, x)
    _tap_shapes(closed)  # repeated names are an error here too
    sources = [frozenset([i]) if i < num_params else frozenset() for i in range(len(leaves))]
    owned: dict[str, set[int]] = {}
    _flow(closed.jaxpr, sources, owned)
    paths = _trainable_paths(params)
    return {
        name: tuple((i, paths[i]) for i in sorted(found) if paths[i] is not None)
        for name, found in owned.items()
    }


def _flow(jaxpr, sources: list[frozenset], owned: dict[str, set[int]]) -> list[frozenset]:
    """Which param leaves reach each output of `jaxpr` without passing a tap; records each tap's in `owned`.

    `sources[k]` is the set of leaves reaching input `k`. A tap's output
    starts empty (what flows through a tap belongs to that tap); a call whose
    body holds taps is followed inside; any other equation passes the union
    of its inputs' sets to every output.
    """
    env = {}

    def read(var):
        return frozenset() if isinstance(var, jcore.Literal) else env.get(var, frozenset())

    for var, found in zip(jaxpr.invars, sources, strict=True):
        env[var] = found
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        body = _tapped_body(eqn)
        if jaxprs.tap_name(eqn) is not None:
            owned.setdefault(jaxprs.tap_name(eqn), set()).update(invals[0])
            outvals = [frozenset()]
        elif body is not None:
            outvals = _flow(body, invals, owned)
        else:
            union = frozenset().union(*invals)
            outvals = [union] * len(eqn.outvars)
        for var, found in zip(eqn.outvars, outvals, strict=True):
            env[var] = found
    return [read(v) for v in jaxpr.outvars]


def _tapped_body(eqn):
    """The body of a call equation (`jaxprs.call_body`) that holds a tap, else None."""
    found = jaxprs.call_body(eqn)
    if found is not None and jaxprs.contains(found[0], lambda e: jaxprs.tap_name(e) is not None):
        return found[0]
    return None


def _trainable_paths(params) -> list[str | None]:
    """Each leaf's path ("/"-joined keys below the trainable root), None outside it.

    Of Linen variables (a mapping with a 'params' collection) only 'params' is
    trainable, and paths start below it; of anything else, every leaf.
    """
    root = ("params",) if isinstance(params, Mapping) and "params" in params else ()
    paths = []
    for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        names = tuple(_key_name(k) for k in path)
        paths.append("/".join(names[len(root):]) if names[: len(root)] == root else None)
    return paths


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def check_input(x, spec: tuple[int | None, ...] | None, name: str = "x"):
    """Checks a batch-first input against a per-example spec; returns `x` unchanged.

    Shape and dtype are checked always; NaN and infinity only where `x` holds
    concrete values (outside `jit`), since a traced value has none to check.
    Under `jit` nothing is checked and nothing is added to the program (a
    per-call check there would cost a host callback); instead a non-finite
    input reaches the output: the zoo's layers keep NaN (`interp.ops.relu`,
    the switch max-pool, sums and means), so the scores of a NaN input are
    NaN, and `interp.attribution`'s input gradients are NaN wherever the
    score is (`input_gradients`). A user's function is only as
    NaN-keeping as its ops: on XLA:CPU, `jax.nn.relu` followed by a sum or
    mean, and `jnp.max` reductions, can drop NaN under `jit`.

    Raises:
      ValueError: naming `name`, what was expected and what was given: a shape
        that does not fit `spec` (saying so when it looks NCHW), an empty
        batch, a non-float dtype, or NaN/infinity.
    """
    shape = tuple(np.shape(x))
    if spec is not None:
        expected = "[batch, " + ", ".join("*" if d is None else str(d) for d in spec) + "]"
        fits = len(shape) == len(spec) + 1 and all(
            d is None or d == s for d, s in zip(spec, shape[1:])
        )
        if not fits:
            hint = f", which looks like NCHW; {_TRANSPOSE}" if _looks_channels_first(shape) else ""
            raise ValueError(f"{name}: expected shape {expected}, got {list(shape)}{hint}")
    if shape and shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty batch, got shape {list(shape)}")
    dtype = getattr(x, "dtype", None)
    if dtype is not None and not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name}: expected a floating-point array, got dtype {dtype}")
    if not isinstance(x, (jax.core.Tracer, jax.ShapeDtypeStruct)):
        if not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError(f"{name}: contains NaN or infinite values")
    return x


_TRANSPOSE = "pass x.transpose(0, 2, 3, 1) for channels last"


def _looks_channels_first(shape: tuple[int, ...]) -> bool:
    """[b, c, h, w] with a colour-like c (1, 3 or 4) before larger spatial sides."""
    return len(shape) == 4 and shape[1] in (1, 3, 4) and min(shape[2:]) > 4


@contextlib.contextmanager
def layout_hint(x, name: str = "x"):
    """Re-raises an error of a model call on `x` as a `ValueError` saying so when `x` looks NCHW.

    A function written for NHWC images fails deep inside (a Flax parameter
    shape error, a convolution's feature mismatch) on channels-first input;
    this names the likely cause and keeps the original error as the cause.
    Only the failing call pays for it, once, at trace time.
    """
    try:
        yield
    except Exception as error:
        shape = tuple(np.shape(x))
        if not _looks_channels_first(shape):
            raise
        raise ValueError(f"{name}: expected NHWC images [b, h, w, c], got {list(shape)}, which looks like "
                         f"NCHW; {_TRANSPOSE}") from error


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
        try:
            return self.module.apply(variables, x, **dict(self.kwargs))
        except flax.errors.ScopeCollectionNotFound as error:
            raise ValueError(f"variables: {type(self.module).__name__} reads a collection that variables "
                             f"(keys: {', '.join(map(str, variables)) or 'none'}) lacks; pass the whole dict "
                             "module.init returns ({'params': ...}), not variables['params']") from error


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

    Raises:
      TypeError: `variables` is not a mapping (e.g. None).
      ValueError: at the first call, when the module finds no collection it
        reads in `variables` (e.g. `variables['params']` passed for `variables`).
    """
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables: expected the Linen variables module.init returns "
                        f"({{'params': ...}}), got {type(variables).__name__}")
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
    """A `Model` from a plain JAX function: `fn(x)`, or `fn(params, x)` when `params` is given.

    Raises:
      TypeError: `fn` is a Linen module (it needs its variables: `from_linen`).
    """
    check_not_linen(fn, "fn")
    if params is None:
        return Model(_PlainApply(fn), (), input_spec)
    return Model(fn, params, input_spec)


def check_not_linen(fn: Any, argument: str) -> None:
    """Raises a `TypeError` naming `argument` when `fn` is a Linen module where a function is expected.

    An unbound Linen module is callable, so without this check it would fail
    at its first call with Flax's "unbound module" error.
    """
    if isinstance(fn, nn.Module):
        raise TypeError(f"{argument}: got a Linen module ({type(fn).__name__}) without its variables; "
                        "pass nets.from_linen(module, variables)")


def as_model(model: Any, variables: Mapping[str, Any] | None = None, **kwargs) -> Model:
    """Turns a `Model`, Linen module (with `variables`), NNX module or function into a `Model`.

    Raises:
      ValueError: a Linen module without `variables`.
      TypeError: `model` is none of these.
    """
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        if variables is None:
            raise ValueError(f"variables: a Linen module ({type(model).__name__}) needs its variables; pass "
                             "variables=module.init(...) or nets.from_linen(module, variables)")
        return from_linen(model, variables, **kwargs)
    if isinstance(model, nnx.Module):
        return from_nnx(model, **kwargs)
    if callable(model):
        return from_function(model, variables, **kwargs)
    raise TypeError(f"model: expected a Model, Linen or NNX module, or a callable; got {type(model)}")
