"""Receptive fields of named layers, analytically from the jaxpr.

`receptive_fields(model, x)` traces the model on `x` (an array or a
`jax.ShapeDtypeStruct`; with `jax.eval_shape`d params a VGG-16 at 224 px costs
no weights) and runs an abstract interpretation of the jaxpr. Along each
spatial input axis (H and W), every value carries an affine map from its index
`i` along one of its dimensions to the input pixels that element can depend on:

    start + i * stride  ...  start + i * stride + size - 1

`start` is negative, and the span may run past the image, where a unit sees
padding. Convolutions, pools (`reduce_window` or the zoo's pad-slice-max
pool), `pad` and strided `slice` move and widen spans; elementwise ops take the
union of their operands' spans (a residual add needs equal strides); a
reduction, a `dot_general` contraction or a reshape that merges a spatial
dimension collapses it into one span shared by every element, "global" when it
covers the image. A primitive with no rule raises `NotImplementedError` when it
touches a spatial dimension, rather than return a wrong number.

`interp.featviz.empirical_rf` measures what a unit actually responds to by
occluding its top images with noise patches (Zhou et al., ICLR 2015).
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from interp import nets
from interp.nets._tap import TAP_PRIMITIVE


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """The input pixels each unit of a layer can see, per spatial axis (h, w).

    Unit (i, j) sees rows `start[0] + i * stride[0]` to `... + size[0] - 1`
    and likewise columns. Parts outside the image are padding. A layer with no
    spatial position left (after a global pool, a flatten or a dense layer) has
    stride 0: every unit sees the same span, which for an `is_global` layer is
    the whole image (start 0, size = image size). A layer that does not depend
    on the input at all has size 0.

    Attributes:
      size: (h, w) extent of the field in input pixels.
      stride: (h, w) input pixels between neighbouring units.
      start: (h, w) first pixel seen by unit (0, 0); negative inside padding.
      is_global: every unit sees the whole image.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    start: tuple[int, int]
    is_global: bool = False

    def center(self, i, j) -> tuple[Any, Any]:
        """Centre (row, col) in input pixels of unit (i, j): `start + i * stride + (size - 1) / 2`.

        `i`, `j` may be ints or integer arrays; the centre is fractional (x.5)
        for even sizes.
        """
        return (
            self.start[0] + i * self.stride[0] + (self.size[0] - 1) / 2,
            self.start[1] + j * self.stride[1] + (self.size[1] - 1) / 2,
        )

    def box(self, i, j, image_size: tuple[int, int] | None = None) -> tuple[Any, Any, Any, Any]:
        """Half-open box `(top, left, bottom, right)` of unit (i, j) in input pixels.

        Rows `top .. bottom - 1` and columns `left .. right - 1`, as in
        `image[top:bottom, left:right]`.

        Args:
          i, j: unit position (ints or integer arrays).
          image_size: (H, W) to clip the box to the image; None (default)
            returns the unclipped box, which may reach into padding.
        """
        top = self.start[0] + i * self.stride[0]
        left = self.start[1] + j * self.stride[1]
        box = (top, left, top + self.size[0], left + self.size[1])
        if image_size is None:
            return box
        limits = (image_size[0], image_size[1]) * 2
        return tuple(_clip(v, hi) for v, hi in zip(box, limits))


def _clip(value, high):
    if isinstance(value, (jax.Array, np.ndarray)):
        return jnp.clip(value, 0, high)
    return min(max(value, 0), high)


class _Span(NamedTuple):
    """Input pixels along one spatial axis seen by the elements of a value.

    Index `i` of dimension `dim` sees `start + i * stride ... + size - 1`.
    `dim` None: every element sees the same span (stride 0), clipped to the
    image; a span of size 0 sees only padding.
    """

    dim: int | None
    start: int
    stride: int
    size: int


# One span per spatial input axis; None for values independent of the input.
_Value = tuple[_Span, ...] | None


@dataclasses.dataclass
class _Context:
    extents: tuple[int, ...]  # input size along each spatial axis
    taps: dict[str, _Value]


def _is_local(value: _Value) -> bool:
    return value is not None and any(s.dim is not None for s in value)


def _fixed(start: int, size: int, extent: int) -> _Span:
    """A span shared by every element, clipped to the image."""
    lo, hi = max(start, 0), min(start + size, extent)
    return _Span(None, lo, 0, hi - lo) if hi > lo else _Span(None, 0, 0, 0)


def _collapse(span: _Span, length: int, extent: int) -> _Span:
    """The union of the spans of all `length` indices of the span's dimension."""
    if span.dim is None:
        return span
    return _fixed(span.start, span.size + span.stride * (length - 1), extent)


def _union(a: _Span, b: _Span, shape: Sequence[int], extent: int, prim: str) -> _Span:
    """The smallest span holding `a` and `b`, for a value of `shape`."""
    if a.dim is None and b.dim is None:
        if min(a.size, b.size) == 0:
            return a if b.size == 0 else b
        lo, hi = min(a.start, b.start), max(a.start + a.size, b.start + b.size)
        return _Span(None, lo, 0, hi - lo)
    if a.dim is None or b.dim is None:
        shared, local = (a, b) if a.dim is None else (b, a)
        if shared.size == 0 or (shared.start == 0 and shared.size == extent):
            return local if shared.size == 0 else shared  # nothing, or the whole image already
        problem = "a varying span and a fixed part of the image"
    elif a.dim != b.dim:
        problem = f"spans on different dimensions ({a.dim} and {b.dim})"
    elif a.stride != b.stride and shape[a.dim] > 1:
        problem = f"different strides ({a.stride} and {b.stride} input pixels per unit)"
    else:
        problem = None
    if problem:
        raise NotImplementedError(f"receptive_fields: '{prim}' combines {problem}; the union is not an affine span")
    lo, hi = min(a.start, b.start), max(a.start + a.size, b.start + b.size)
    return _Span(a.dim, lo, a.stride, hi - lo)


def _join(values: Sequence[_Value], shape: Sequence[int], ctx: _Context, prim: str) -> _Value:
    """The union of already-aligned values (None entries are ignored)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return tuple(
        functools.reduce(lambda a, b: _union(a, b, shape, extent, prim), spans)
        for extent, spans in zip(ctx.extents, zip(*present))
    )


def _map_local(value: _Value, ctx: _Context, move: Callable[[_Span, int], _Span]) -> _Value:
    """Applies `move(span, extent)` to the spans that vary along a dimension."""
    if value is None:
        return None
    return tuple(move(s, e) if s.dim is not None else s for s, e in zip(value, ctx.extents))


def _shape(var) -> tuple[int, ...]:
    return tuple(getattr(var.aval, "shape", ()))


def _broadcast(value: _Value, shape, out_shape, ctx: _Context, prim: str) -> _Value:
    """Aligns an operand of an elementwise op with its output (size-1 dims broadcast)."""
    if value is None or len(shape) == len(out_shape):
        return _map_local(
            value,
            ctx,
            lambda s, e: _fixed(s.start, s.size, e) if shape[s.dim] == 1 and out_shape[s.dim] != 1 else s,
        )
    if _is_local(value):
        raise NotImplementedError(f"receptive_fields: '{prim}' broadcasts an operand of rank {len(shape)}")
    return value


def _elementwise(eqn, ins, ctx):
    out_shape = _shape(eqn.outvars[0])
    name = eqn.primitive.name
    if name == "concatenate" and any(
        s.dim == eqn.params["dimension"] for v in ins if v is not None for s in v
    ):
        raise NotImplementedError("receptive_fields: 'concatenate' along a spatial dimension")
    aligned = [_broadcast(v, _shape(var), out_shape, ctx, name) for v, var in zip(ins, eqn.invars)]
    return [_join(aligned, out_shape, ctx, name)] * len(eqn.outvars)


def _windowed(span: _Span, dim: int, window: int, stride: int, low: int, dilation: int) -> _Span:
    """The span after a sliding window: `window` taps `dilation` apart, `stride`, `low` padding."""
    return _Span(dim, span.start - span.stride * low, span.stride * stride, span.size + span.stride * (window - 1) * dilation)


def _conv(eqn, ins, ctx):
    lhs, rhs = ins
    if _is_local(rhs):
        raise NotImplementedError("receptive_fields: a conv_general_dilated kernel that varies spatially")
    p, dn = eqn.params, eqn.params["dimension_numbers"]
    lhs_dims, rhs_dims, out_dims = dn.lhs_spec[2:], dn.rhs_spec[2:], dn.out_spec[2:]
    kernel = _shape(eqn.invars[1])

    def move(span, _):
        if span.dim not in lhs_dims or p["lhs_dilation"][lhs_dims.index(span.dim)] != 1:
            raise NotImplementedError(
                "receptive_fields: conv_general_dilated with lhs_dilation (a transposed conv) or "
                "with a spatial input axis as its batch or feature dimension"
            )
        k = lhs_dims.index(span.dim)
        return _windowed(span, out_dims[k], kernel[rhs_dims[k]], p["window_strides"][k], p["padding"][k][0],
                         p["rhs_dilation"][k])

    return [_join([_map_local(lhs, ctx, move), rhs], _shape(eqn.outvars[0]), ctx, "conv_general_dilated")]


def _window(eqn, ins, ctx):
    p, n = eqn.params, len(eqn.outvars)

    def move(span, _):
        d = span.dim
        if p["base_dilation"][d] != 1:
            raise NotImplementedError(f"receptive_fields: '{eqn.primitive.name}' with base_dilation")
        return _windowed(span, d, p["window_dimensions"][d], p["window_strides"][d], p["padding"][d][0],
                         p["window_dilation"][d])

    return [
        _join([_map_local(v, ctx, move), *ins[n:]], _shape(out), ctx, eqn.primitive.name)
        for v, out in zip(ins[:n], eqn.outvars)
    ]


def _pad(eqn, ins, ctx):
    config = eqn.params["padding_config"]
    if any(config[s.dim][2] for s in ins[0] if s.dim is not None):
        raise NotImplementedError("receptive_fields: 'pad' with interior padding along a spatial dimension")
    moved = _map_local(ins[0], ctx, lambda s, _: _windowed(s, s.dim, 1, 1, config[s.dim][0], 1))
    return [_join([moved, ins[1]], _shape(eqn.outvars[0]), ctx, "pad")]


def _slice(eqn, ins, ctx):
    starts = eqn.params["start_indices"]
    strides = eqn.params["strides"] or (1,) * len(starts)
    return [_map_local(ins[0], ctx, lambda s, _: _windowed(s, s.dim, 1, strides[s.dim], -starts[s.dim], 1))]


def _transpose(eqn, ins, ctx):
    perm = tuple(eqn.params["permutation"])
    return [_map_local(ins[0], ctx, lambda s, _: s._replace(dim=perm.index(s.dim)))]


def _broadcast_in_dim(eqn, ins, ctx):
    shape, out_shape = _shape(eqn.invars[0]), eqn.params["shape"]
    dims = eqn.params["broadcast_dimensions"]

    def move(span, extent):
        if shape[span.dim] == 1 and out_shape[dims[span.dim]] != 1:
            return _fixed(span.start, span.size, extent)
        return span._replace(dim=dims[span.dim])

    return [_join([_map_local(ins[0], ctx, move), *ins[1:]], out_shape, ctx, "broadcast_in_dim")]


def _dropping(removed: Sequence[int], shape):
    """A move that collapses the `removed` dims and renumbers the others."""

    def move(span, extent):
        if span.dim in removed:
            return _collapse(span, shape[span.dim], extent)
        return span._replace(dim=span.dim - sum(r < span.dim for r in removed))

    return move


def _reduce(eqn, ins, ctx):
    move = _dropping(tuple(eqn.params["axes"]), _shape(eqn.invars[0]))
    return [_map_local(ins[0], ctx, move)] * len(eqn.outvars)


def _squeeze(eqn, ins, ctx):
    return [_map_local(ins[0], ctx, _dropping(tuple(eqn.params["dimensions"]), _shape(eqn.invars[0])))]


def _reshape(eqn, ins, ctx):
    if eqn.params.get("dimensions") is not None:
        raise NotImplementedError("receptive_fields: 'reshape' with a dimension permutation")
    old, new = _shape(eqn.invars[0]), tuple(eqn.params["new_sizes"])
    kept = {d: d for d in range(len(old))} if old == new else _kept_dims(old, new)

    def move(span, extent):
        if span.dim in kept:
            return span._replace(dim=kept[span.dim])
        # A merged or split spatial dimension mixes all its positions.
        return _collapse(span, old[span.dim], extent)

    return [_join([_map_local(ins[0], ctx, move), *ins[1:]], new, ctx, "reshape")]


def _kept_dims(old: Sequence[int], new: Sequence[int]) -> dict[int, int]:
    """Dims (of size > 1) that a row-major reshape keeps intact: old index -> new index."""
    before_old = np.cumprod((1, *old))[:-1]
    before_new = np.cumprod((1, *new))[:-1]
    return {
        i: j
        for i in range(len(old))
        for j in range(len(new))
        if old[i] > 1 and old[i] == new[j] and before_old[i] == before_new[j]
    }


def _dot_general(eqn, ins, ctx):
    (contract_l, contract_r), (batch_l, batch_r) = eqn.params["dimension_numbers"]
    shapes = [_shape(v) for v in eqn.invars]
    free_l = [d for d in range(len(shapes[0])) if d not in contract_l and d not in batch_l]
    free_r = [d for d in range(len(shapes[1])) if d not in contract_r and d not in batch_r]

    def mover(contract, batch, free, offset, shape):
        def move(span, extent):
            if span.dim in contract:
                return _collapse(span, shape[span.dim], extent)
            if span.dim in batch:
                return span._replace(dim=tuple(batch).index(span.dim))
            return span._replace(dim=offset + free.index(span.dim))

        return move

    moved = [
        _map_local(ins[0], ctx, mover(contract_l, batch_l, free_l, len(batch_l), shapes[0])),
        _map_local(ins[1], ctx, mover(contract_r, batch_r, free_r, len(batch_l) + len(free_l), shapes[1])),
    ]
    return [_join(moved, _shape(eqn.outvars[0]), ctx, "dot_general")]


_ELEMENTWISE = (
    "neg", "sign", "floor", "ceil", "round", "is_finite", "exp", "exp2", "log", "log1p", "expm1", "tanh",
    "logistic", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
    "abs", "sqrt", "rsqrt", "cbrt", "integer_pow", "square", "erf", "erfc", "erf_inv", "lgamma",
    "digamma", "convert_element_type", "copy", "copy_p", "real", "imag", "conj", "reduce_precision",
    "not", "population_count", "clz", "add", "add_any", "sub", "mul", "div", "rem", "pow", "max", "min",
    "atan2", "nextafter", "and", "or", "xor", "eq", "ne", "lt", "le", "gt", "ge", "shift_left",
    "shift_right_logical", "shift_right_arithmetic", "select_n", "clamp", "concatenate",
)  # fmt: skip
_REDUCTIONS = ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or",
               "reduce_xor", "argmax", "argmin")  # fmt: skip
_WINDOWS = ("reduce_window_sum", "reduce_window_max", "reduce_window_min", "reduce_window")
_RULES: dict[str, Callable] = {
    **dict.fromkeys(_ELEMENTWISE, _elementwise),
    **dict.fromkeys(_REDUCTIONS, _reduce),
    **dict.fromkeys(_WINDOWS, _window),
    "conv_general_dilated": _conv,
    "pad": _pad,
    "slice": _slice,
    "transpose": _transpose,
    "broadcast_in_dim": _broadcast_in_dim,
    "squeeze": _squeeze,
    "reshape": _reshape,
    "dot_general": _dot_general,
}
# Call-like primitives whose body is interpreted in place (values are unchanged by them).
_CALLS = frozenset({
    "jit", "pjit", "closed_call", "core_call", "remat", "remat2", "checkpoint",
    "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr",
})


def _run(jaxpr: jcore.Jaxpr, inputs: Sequence[_Value], ctx: _Context) -> list[_Value]:
    env: dict[Any, _Value] = dict.fromkeys(jaxpr.constvars)
    env.update(zip(jaxpr.invars, inputs, strict=True))

    def read(var):
        return None if isinstance(var, jcore.Literal) else env[var]

    for eqn in jaxpr.eqns:
        outs = _eval_equation(eqn, [read(v) for v in eqn.invars], ctx)
        env.update(zip(eqn.outvars, outs, strict=True))
    return [read(v) for v in jaxpr.outvars]


def _eval_equation(eqn, ins: list[_Value], ctx: _Context) -> list[_Value]:
    name = eqn.primitive.name
    if name in _CALLS:
        body = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr", eqn.params.get("fun_jaxpr")))
        body = body.jaxpr if isinstance(body, jcore.ClosedJaxpr) else body
        if body is None or len(body.invars) != len(ins):
            raise NotImplementedError(f"receptive_fields: cannot read the body of '{name}'")
        return _run(body, ins, ctx)
    if name == TAP_PRIMITIVE:
        ctx.taps[eqn.params["name"]] = ins[0]
        return [ins[0]]
    if not any(_is_local(v) for v in ins):
        # Whatever the primitive, each output sees at most what its inputs see.
        return [_join(ins, (), ctx, name)] * len(eqn.outvars)
    if name not in _RULES:
        raise NotImplementedError(
            f"receptive_fields: no rule for primitive '{name}', which here takes a value that "
            "varies along a spatial input axis"
        )
    return _RULES[name](eqn, ins, ctx)


def _to_field(value: _Value, extents: tuple[int, ...]) -> ReceptiveField:
    if value is None:
        return ReceptiveField((0, 0), (0, 0), (0, 0))
    return ReceptiveField(
        size=tuple(int(s.size) for s in value),
        stride=tuple(int(s.stride) for s in value),
        start=tuple(int(s.start) for s in value),
        is_global=all(s.dim is None and s.start == 0 and s.size == e for s, e in zip(value, extents)),
    )


def receptive_fields(
    model: Any, x: jax.Array | jax.ShapeDtypeStruct, *, spatial_axes: tuple[int, int] = (1, 2)
) -> dict[str, ReceptiveField]:
    """The theoretical receptive field of every named layer of `model` on inputs shaped like `x`.

    Computed from the jaxpr of `model` traced on `x`; nothing is evaluated, so
    `x` and the model's params may be `jax.ShapeDtypeStruct`s (e.g. params from
    `jax.eval_shape(module.init, key, x)`).

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      x: an input batch [b, H, W, C] (values unused) or its ShapeDtypeStruct.
      spatial_axes: the dimensions of `x` that are its rows and columns
        ((2, 3) for NCHW).

    Returns:
      `{layer: ReceptiveField}` for every `tap`-named layer, in execution order.

    Raises:
      ValueError: `spatial_axes` do not fit `x`.
      NotImplementedError: a primitive with no rule touches a spatial dimension.
    """
    model = nets.as_model(model)
    x = jax.ShapeDtypeStruct(tuple(np.shape(x)), getattr(x, "dtype", jnp.float32))
    axes = tuple(int(a) for a in spatial_axes)
    if len(axes) != 2 or len(set(axes)) != 2 or not all(0 < a < len(x.shape) for a in axes):
        raise ValueError(
            f"spatial_axes: expected two distinct non-batch dimensions of x (shape {list(x.shape)}), got {spatial_axes!r}"
        )
    closed = jax.make_jaxpr(model.apply_fn)(model.params, nets.check_input(x, model.input_spec))
    ctx = _Context(extents=tuple(x.shape[a] for a in axes), taps={})
    inputs = [None] * (len(closed.jaxpr.invars) - 1) + [tuple(_Span(a, 0, 1, 1) for a in axes)]
    _run(closed.jaxpr, inputs, ctx)
    return {name: _to_field(value, ctx.extents) for name, value in ctx.taps.items()}
