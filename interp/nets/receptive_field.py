"""Receptive fields of named layers, a static analysis of a model's jaxpr.

`receptive_fields(model, x)` traces the model on `x` (an array or a
`jax.ShapeDtypeStruct`; with `jax.eval_shape`d params a VGG-16 at 224 px costs
no weights) and runs an abstract interpretation of the jaxpr. Along each
spatial input axis (H and W), every value carries an affine map from its index
`i` along one of its dimensions to the input pixels that element can depend on:

    start + i * stride  ...  start + i * stride + size - 1

`start` is negative, and the span may run past the image, where a unit sees
padding. Convolutions, pools (`reduce_window` or the zoo's pad-slice-max
pool), `pad` and strided `slice` move and widen spans; elementwise ops take the
union of their operands' spans (a residual add needs equal strides); a value
under `jax.lax.stop_gradient` sees no pixel (the field is what the gradient
can reach: the interpretable conv's mask selects where a unit looks, it is not
part of what it sees); a
reduction, a `dot_general` contraction or a reshape that merges a spatial
dimension collapses it into one span shared by every element, "global" when it
covers the image. A primitive with no rule raises `NotImplementedError` when it
touches a spatial dimension, rather than return a wrong number (the rules are
in `interp.nets._spans`). Call bodies (jit, remat, custom derivatives) are
entered as the rest of the library enters them (`interp.ops.jaxprs`).

`interp.featviz.empirical_receptive_field` measures what a unit actually
responds to by occluding its top images with noise patches (Zhou et al., ICLR
2015).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from interp.nets import _spans
from interp.nets.adapter import as_model, check_input
from interp.ops import jaxprs


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
      stride: (h, w) input pixels between neighboring units.
      start: (h, w) first pixel seen by unit (0, 0); negative inside padding.
      is_global: every unit sees the whole image.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    start: tuple[int, int]
    is_global: bool = False

    def center(self, i, j) -> tuple[Any, Any]:
        """Center (row, col) in input pixels of unit (i, j): `start + i * stride + (size - 1) / 2`.

        `i`, `j` may be ints or integer arrays; the center is fractional (x.5)
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
    model = as_model(model)
    x = jax.ShapeDtypeStruct(tuple(np.shape(x)), getattr(x, "dtype", jnp.float32))
    axes = tuple(int(a) for a in spatial_axes)
    if len(axes) != 2 or len(set(axes)) != 2 or not all(0 < a < len(x.shape) for a in axes):
        raise ValueError(
            f"spatial_axes: expected two distinct non-batch dimensions of x (shape {list(x.shape)}), "
            f"got {spatial_axes!r}"
        )
    closed = jax.make_jaxpr(model.apply_fn)(model.params, check_input(x, model.input_spec))
    extents = tuple(x.shape[a] for a in axes)
    # The input is the last flat argument; every param sees no pixel.
    inputs = [None] * (len(closed.jaxpr.invars) - 1) + [tuple(_spans.Span(a, 0, 1, 1) for a in axes)]
    return {name: _to_field(value, extents) for name, value in _tapped_spans(closed, inputs, extents).items()}


def _tapped_spans(
    closed: jcore.ClosedJaxpr, inputs: list[_spans.Value], extents: _spans.Extents
) -> dict[str, _spans.Value]:
    """The spans of every tapped value of `closed`, by layer name in execution order."""
    taps = {}

    def step(eqn, ins):
        body = jaxprs.call_body(eqn)
        if body is not None:
            return run(*body, ins)
        name = jaxprs.tap_name(eqn)
        if name is not None:
            taps[name] = ins[0]
            return [ins[0]]
        return _spans.apply(eqn, ins, extents)

    def run(jaxpr, consts, ins):  # literals and consts see no pixel
        return jaxprs.walk(jaxpr, [None] * len(consts), ins, step, literal=lambda _: None)

    run(closed.jaxpr, closed.consts, inputs)
    return taps


def _to_field(value: _spans.Value, extents: _spans.Extents) -> ReceptiveField:
    if value is None:
        return ReceptiveField((0, 0), (0, 0), (0, 0))
    return ReceptiveField(
        size=tuple(int(s.size) for s in value),
        stride=tuple(int(s.stride) for s in value),
        start=tuple(int(s.start) for s in value),
        is_global=all(s.dim is None and s.start == 0 and s.size == e for s, e in zip(value, extents)),
    )
