"""The span algebra behind `receptive_fields`: which input pixels each element of a value sees.

Along each spatial input axis, a value carries a `Span`: index `i` of its
dimension `dim` sees input pixels `start + i * stride ... + size - 1`. `apply`
moves the spans of an equation's operands to its outputs, one rule per
primitive; a primitive with no rule raises `NotImplementedError` when it
touches a spatial dimension, rather than return a wrong number.
"""

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from jax.extend import core as jcore


class Span(NamedTuple):
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
Value = tuple[Span, ...] | None
Extents = tuple[int, ...]  # the input's size along each spatial axis


def apply(eqn: jcore.JaxprEqn, ins: list[Value], extents: Extents) -> list[Value]:
    """The spans of `eqn`'s outputs from those of its operands.

    Raises:
      NotImplementedError: the primitive has no rule and takes a value that
        varies along a spatial axis, or its result is not an affine span.
    """
    name = eqn.primitive.name
    if name == "stop_gradient":
        # A constant to the network's gradient, and so to its receptive field: what selects a position (the
        # interpretable conv's mask, centred on a map's peak) is not what the unit sees.
        return [None] * len(eqn.outvars)
    if not any(_is_local(v) for v in ins):
        # Whatever the primitive, each output sees at most what its inputs see.
        return [_join(ins, (), extents, name)] * len(eqn.outvars)
    if name not in _RULES:
        raise NotImplementedError(
            f"receptive_fields: no rule for primitive '{name}', which here takes a value that "
            "varies along a spatial input axis"
        )
    return _RULES[name](eqn, ins, extents)


def _is_local(value: Value) -> bool:
    return value is not None and any(s.dim is not None for s in value)


def _fixed(start: int, size: int, extent: int) -> Span:
    """A span shared by every element, clipped to the image."""
    lo, hi = max(start, 0), min(start + size, extent)
    return Span(None, lo, 0, hi - lo) if hi > lo else Span(None, 0, 0, 0)


def _collapse(span: Span, length: int, extent: int) -> Span:
    """The union of the spans of all `length` indices of the span's dimension."""
    if span.dim is None:
        return span
    return _fixed(span.start, span.size + span.stride * (length - 1), extent)


def _union(a: Span, b: Span, shape: Sequence[int], extent: int, prim: str) -> Span:
    """The smallest span holding `a` and `b`, for a value of `shape`."""
    if a.dim is None and b.dim is None:
        if min(a.size, b.size) == 0:
            return a if b.size == 0 else b
        lo, hi = min(a.start, b.start), max(a.start + a.size, b.start + b.size)
        return Span(None, lo, 0, hi - lo)
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
    return Span(a.dim, lo, a.stride, hi - lo)


def _join(values: Sequence[Value], shape: Sequence[int], extents: Extents, prim: str) -> Value:
    """The union of already-aligned values (None entries are ignored)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return tuple(
        functools.reduce(lambda a, b: _union(a, b, shape, extent, prim), spans)
        for extent, spans in zip(extents, zip(*present))
    )


def _map_local(value: Value, extents: Extents, move: Callable[[Span, int], Span]) -> Value:
    """Applies `move(span, extent)` to the spans that vary along a dimension."""
    if value is None:
        return None
    return tuple(move(s, e) if s.dim is not None else s for s, e in zip(value, extents))


def _shape(var) -> tuple[int, ...]:
    return tuple(getattr(var.aval, "shape", ()))


def _broadcast(value: Value, shape, out_shape, extents: Extents, prim: str) -> Value:
    """Aligns an operand of an elementwise op with its output (size-1 dims broadcast)."""
    if value is None or len(shape) == len(out_shape):
        return _map_local(
            value,
            extents,
            lambda s, e: _fixed(s.start, s.size, e) if shape[s.dim] == 1 and out_shape[s.dim] != 1 else s,
        )
    if _is_local(value):
        raise NotImplementedError(f"receptive_fields: '{prim}' broadcasts an operand of rank {len(shape)}")
    return value


def _elementwise(eqn, ins, extents):
    out_shape = _shape(eqn.outvars[0])
    name = eqn.primitive.name
    if name == "concatenate" and any(
        s.dim == eqn.params["dimension"] for v in ins if v is not None for s in v
    ):
        raise NotImplementedError("receptive_fields: 'concatenate' along a spatial dimension")
    aligned = [_broadcast(v, _shape(var), out_shape, extents, name) for v, var in zip(ins, eqn.invars)]
    return [_join(aligned, out_shape, extents, name)] * len(eqn.outvars)


def _windowed(span: Span, dim: int, window: int, stride: int, low: int, dilation: int) -> Span:
    """The span after a sliding window: `window` taps `dilation` apart, `stride`, `low` padding."""
    return Span(
        dim, span.start - span.stride * low, span.stride * stride, span.size + span.stride * (window - 1) * dilation
    )


def _conv(eqn, ins, extents):
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

    return [_join([_map_local(lhs, extents, move), rhs], _shape(eqn.outvars[0]), extents, "conv_general_dilated")]


def _window(eqn, ins, extents):
    p, n = eqn.params, len(eqn.outvars)

    def move(span, _):
        d = span.dim
        if p["base_dilation"][d] != 1:
            raise NotImplementedError(f"receptive_fields: '{eqn.primitive.name}' with base_dilation")
        return _windowed(span, d, p["window_dimensions"][d], p["window_strides"][d], p["padding"][d][0],
                         p["window_dilation"][d])

    return [
        _join([_map_local(v, extents, move), *ins[n:]], _shape(out), extents, eqn.primitive.name)
        for v, out in zip(ins[:n], eqn.outvars)
    ]


def _pad(eqn, ins, extents):
    config = eqn.params["padding_config"]
    if any(config[s.dim][2] for s in ins[0] if s.dim is not None):
        raise NotImplementedError("receptive_fields: 'pad' with interior padding along a spatial dimension")
    moved = _map_local(ins[0], extents, lambda s, _: _windowed(s, s.dim, 1, 1, config[s.dim][0], 1))
    return [_join([moved, ins[1]], _shape(eqn.outvars[0]), extents, "pad")]


def _slice(eqn, ins, extents):
    starts = eqn.params["start_indices"]
    strides = eqn.params["strides"] or (1,) * len(starts)
    return [_map_local(ins[0], extents, lambda s, _: _windowed(s, s.dim, 1, strides[s.dim], -starts[s.dim], 1))]


def _transpose(eqn, ins, extents):
    perm = tuple(eqn.params["permutation"])
    return [_map_local(ins[0], extents, lambda s, _: s._replace(dim=perm.index(s.dim)))]


def _broadcast_in_dim(eqn, ins, extents):
    shape, out_shape = _shape(eqn.invars[0]), eqn.params["shape"]
    dims = eqn.params["broadcast_dimensions"]

    def move(span, extent):
        if shape[span.dim] == 1 and out_shape[dims[span.dim]] != 1:
            return _fixed(span.start, span.size, extent)
        return span._replace(dim=dims[span.dim])

    return [_join([_map_local(ins[0], extents, move), *ins[1:]], out_shape, extents, "broadcast_in_dim")]


def _dropping(key: str):
    """The rule of a primitive that removes the dims `eqn.params[key]`: collapse them, renumber the rest."""

    def rule(eqn, ins, extents):
        removed, shape = tuple(eqn.params[key]), _shape(eqn.invars[0])

        def move(span, extent):
            if span.dim in removed:
                return _collapse(span, shape[span.dim], extent)
            return span._replace(dim=span.dim - sum(r < span.dim for r in removed))

        return [_map_local(ins[0], extents, move)] * len(eqn.outvars)

    return rule


def _reshape(eqn, ins, extents):
    if eqn.params.get("dimensions") is not None:
        raise NotImplementedError("receptive_fields: 'reshape' with a dimension permutation")
    old, new = _shape(eqn.invars[0]), tuple(eqn.params["new_sizes"])
    kept = {d: d for d in range(len(old))} if old == new else _kept_dims(old, new)

    def move(span, extent):
        if span.dim in kept:
            return span._replace(dim=kept[span.dim])
        # A merged or split spatial dimension mixes all its positions.
        return _collapse(span, old[span.dim], extent)

    return [_join([_map_local(ins[0], extents, move), *ins[1:]], new, extents, "reshape")]


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


def _dot_general(eqn, ins, extents):
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
        _map_local(ins[0], extents, mover(contract_l, batch_l, free_l, len(batch_l), shapes[0])),
        _map_local(ins[1], extents, mover(contract_r, batch_r, free_r, len(batch_l) + len(free_l), shapes[1])),
    ]
    return [_join(moved, _shape(eqn.outvars[0]), extents, "dot_general")]


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
    **dict.fromkeys(_REDUCTIONS, _dropping("axes")),
    **dict.fromkeys(_WINDOWS, _window),
    "conv_general_dilated": _conv,
    "pad": _pad,
    "slice": _slice,
    "transpose": _transpose,
    "broadcast_in_dim": _broadcast_in_dim,
    "squeeze": _dropping("dimensions"),
    "reshape": _reshape,
    "dot_general": _dot_general,
}
