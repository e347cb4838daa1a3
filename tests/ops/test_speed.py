"""for_speed: every rewrite on XLA:CPU, none elsewhere; values unchanged either way."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from interp.ops import for_speed
from interp.ops.jaxprs import equations

X = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
W = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))


def loss(x, key):
    """A conv, a ReLU, a reduce_window max-pool and a threefry draw."""
    h = jax.nn.relu(lax.conv_general_dilated(x, W, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    pooled = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return (pooled * jax.random.normal(key, pooled.shape)).sum()


def _program(f, *args) -> dict[str, int]:
    """Primitive name -> count, and how many convolutions read a kernel not stored [h, w, in, out]."""
    found = {}
    # A fresh function each time: make_jaxpr caches traces by function.
    for e in equations(jax.make_jaxpr(lambda *a: f(*a))(*args).jaxpr):
        found[e.primitive.name] = found.get(e.primitive.name, 0) + 1
        if e.primitive is lax.conv_general_dilated_p and tuple(e.params["dimension_numbers"].rhs_spec) != (3, 2, 0, 1):
            found["swapped kernels"] = found.get("swapped kernels", 0) + 1
    return found


def _grad(f):
    return jax.grad(f)


def test_on_cpu_every_rewrite_applies_and_values_stay_the_same():
    key = jax.random.key(2)
    plain = _grad(loss)
    fast = for_speed(_grad(for_speed(loss, platform="cpu")), platform="cpu")
    before, after = _program(plain, X, key), _program(fast, X, key)
    assert before["reduce_window_max"] and before["select_and_scatter_add"] and before["swapped kernels"]
    assert before["random_bits"]
    for name in ("reduce_window_max", "select_and_scatter_add", "swapped kernels", "random_bits"):
        assert name not in after, name
    np.testing.assert_allclose(jax.jit(fast)(X, key), jax.jit(plain)(X, key), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("platform", ["gpu", "tpu"])
def test_elsewhere_the_program_is_the_function_itself(platform):
    key = jax.random.key(2)
    fast = for_speed(_grad(for_speed(loss, platform=platform)), platform=platform)
    assert _program(fast, X, key) == _program(_grad(loss), X, key)
    np.testing.assert_array_equal(fast(X, key), _grad(loss)(X, key))


def test_the_platform_is_the_default_backend_when_called(monkeypatch):
    key = jax.random.key(2)
    fast = for_speed(loss)
    assert "reduce_window_max" not in _program(fast, X, key)  # the tests run on CPU
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert "reduce_window_max" in _program(fast, X, key)


def test_platform_must_be_a_name():
    with pytest.raises(ValueError, match="platform"):
        for_speed(loss, platform=jax.devices()[0])
