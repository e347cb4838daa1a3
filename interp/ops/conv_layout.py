"""Convolution kernels in the layout XLA:CPU's fast convolution takes.

JAX differentiates a convolution into another convolution whose kernel
dimension numbers swap input and output features (kernel read as `HWOI`).
At the top level of a program XLA:CPU copies such a kernel into `HWIO` and
runs its fast (library) convolution; inside a `while` loop (`lax.scan`) it
does not, and runs a generic convolution instead, several times slower
(`python -m benchmarks.xla_cpu_threads`; figures in benchmarks/RESULTS.md,
"Speed workarounds"). `with_canonical_conv_kernels(f)` transposes every such
kernel explicitly, in `f`'s own jaxpr, so the loop body holds only `HWIO`
convolutions. Values are exactly those of `f`: permuting a kernel and its
dimension numbers together describes the same convolution.
"""

from collections.abc import Callable
from typing import Any

from jax import lax
from jax.extend import core as jcore

from interp.ops import jaxprs


def with_canonical_conv_kernels(f: Callable[..., Any]) -> Callable[..., Any]:
    """`f` with every convolution kernel stored [spatial..., in, out].

    `f` may take and return pytrees. Convolutions nested in control flow or
    custom-derivative functions are left as they are (only a speed matter).
    """
    return jaxprs.rewrite_for_speed(f, *CANONICAL_KERNELS)


def _canonical_rhs_spec(ndim: int) -> tuple[int, ...]:
    """(out, in, spatial...) positions of a kernel stored [spatial..., in, out]."""
    return (ndim - 1, ndim - 2, *range(ndim - 2))


def _needs_transpose(eqn: jcore.JaxprEqn) -> bool:
    if eqn.primitive is not lax.conv_general_dilated_p:
        return False
    rhs_spec = eqn.params["dimension_numbers"].rhs_spec
    return tuple(rhs_spec) != _canonical_rhs_spec(len(rhs_spec))


def _transposed_kernel(eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
    lhs, rhs = invals
    dims = eqn.params["dimension_numbers"]
    out_dim, in_dim, *spatial = dims.rhs_spec
    kernel = lax.transpose(rhs, (*spatial, in_dim, out_dim))
    params = dict(eqn.params, dimension_numbers=dims._replace(rhs_spec=_canonical_rhs_spec(rhs.ndim)))
    return [lax.conv_general_dilated_p.bind(lhs, kernel, **params)]


# (select, rule) for `jaxprs.rewrite_for_speed`; `interp.ops.for_speed` combines it with others.
CANONICAL_KERNELS = (_needs_transpose, _transposed_kernel)
