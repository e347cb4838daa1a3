"""One entry point for the rewrites that change how fast a function runs, never what it computes.

`for_speed(f)` is `f` with every rewrite that helps on the platform it will
run on. Each rewrite replaces equations of `f`'s jaxpr by others that compute
the same values (see its module); today all of them work around XLA:CPU:

  * `reduce_window` max-pools through the switch max-pool (`ops.maxpool`):
    XLA:CPU differentiates them by `select_and_scatter`, several times
    slower than the switch pool's selects. Apply `for_speed` to the function
    *before* differentiating it, so its gradient is the switch pool's.
  * convolution kernels stored [spatial..., in, out] (`ops.conv_layout`):
    inside a loop (`lax.scan`) XLA:CPU runs a backward convolution whose
    kernel is read input/output-swapped on a slow generic path. Apply
    `for_speed` to the *differentiated* function that runs in the loop body.
  * threefry's rounds unrolled (`ops.prng`): XLA:CPU lowers the hash as a
    loop over its round groups; GPUs and TPUs already unroll it.

So a caller wraps both levels: `for_speed(lambda c: grads(for_speed(f), c))`
where the gradients run in a loop; each level applies what it holds.

The platform is JAX's default backend when the wrapped function is called
(traced), not the devices of its inputs: inside `jit`, where these functions
run, the inputs are tracers that carry no device, and a jitted program runs on
the default backend unless its inputs were committed elsewhere. A wrong
guess (arrays placed on the CPU of a GPU machine) costs only speed: no
rewrite changes a value. On other platforms `for_speed(f)` calls `f` as it is:
none of the rewrites was measured to help there.
"""

from collections.abc import Callable
from typing import Any

import jax

from interp.ops import jaxprs
from interp.ops.conv_layout import CANONICAL_KERNELS
from interp.ops.maxpool import SWITCH_POOLS
from interp.ops.prng import UNROLLED_THREEFRY

# platform -> the (select, rule) rewrites that help there, in the order they are tried.
REWRITES = {"cpu": (SWITCH_POOLS, CANONICAL_KERNELS, UNROLLED_THREEFRY)}


def for_speed(f: Callable[..., Any], *, platform: str | None = None) -> Callable[..., Any]:
    """`f` with the rewrites that make it faster on `platform`; the same values and derivatives.

    Args:
      f: any JAX function of positional pytrees (arrays, keys, `Model`s).
      platform: "cpu", "gpu", "tpu", ...; None reads `jax.default_backend()`
        each time the result is called, so a function built at import time
        follows the backend it is traced for.

    Returns:
      A function with `f`'s signature, pure and `jit`/`vmap`/`grad`-able: `f`
      itself where no rewrite helps (every platform but XLA:CPU today).
    """
    if platform is not None and not isinstance(platform, str):
        raise ValueError(f"platform: expected a platform name such as 'cpu' or None, got {platform!r}")

    def fast(*args):
        rewrites = REWRITES.get(jax.default_backend() if platform is None else platform, ())
        if not rewrites:
            return f(*args)
        return jaxprs.rewrite_for_speed(f, *_combined(rewrites))(*args)

    return fast


def _combined(rewrites) -> tuple[jaxprs.Selector, jaxprs.Rule]:
    """One (select, rule) that runs the first rewrite whose selector picks an equation."""

    def select(eqn):
        return any(picks(eqn) for picks, _ in rewrites)

    def rule(eqn, invals):
        return next(run for picks, run in rewrites if picks(eqn))(eqn, invals)

    return select, rule
