"""ReLU backward rules installed by rewriting a function's jaxpr."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from interp.ops import deconvnet_relu, guided_relu, relu_equations, with_relu_backward

W = jax.random.normal(jax.random.key(0), (6, 4))
V = jax.random.normal(jax.random.key(1), (6,))
X = jax.random.normal(jax.random.key(2), (4,))

RELUS = {
    "jax.nn.relu": jax.nn.relu,
    "maximum(h, 0)": lambda h: jnp.maximum(h, 0),
    "maximum(0., h)": lambda h: jnp.maximum(0.0, h),
    "lax.max zeros_like": lambda h: lax.max(h, jnp.zeros_like(h)),
    "clip(h, 0)": lambda h: jnp.clip(h, 0),
    "where(h > 0, h, 0)": lambda h: jnp.where(h > 0, h, 0),
    "where(h <= 0, 0, h)": lambda h: jnp.where(h <= 0, 0.0, h),
    "jit(jax.nn.relu)": jax.jit(jax.nn.relu),
    "nested jit": jax.jit(lambda h: jax.jit(jax.nn.relu)(h) * 1.0),
    "remat": jax.checkpoint(lambda h: jnp.maximum(h, 0.0)),
}


@pytest.mark.parametrize("relu", RELUS.values(), ids=RELUS.keys())
def test_one_layer_net_matches_the_hand_derived_rules(relu):
    f = lambda x: V @ relu(W @ x)
    h = W @ X
    # d f / d relu(h) = V, so each rule's signal at the ReLU input is V masked.
    expected = {
        "guided": W.T @ (V * (h > 0) * (V > 0)),
        "deconvnet": W.T @ (V * (V > 0)),
    }
    for rule, want in expected.items():
        rewritten = with_relu_backward(f, rule)
        assert rewritten(X) == f(X)  # forward values unchanged, bit for bit
        np.testing.assert_allclose(jax.grad(rewritten)(X), want, rtol=1e-6, atol=1e-6)
    assert len(relu_equations(jax.make_jaxpr(f)(X))) == 1


def two_layer(x, w1, w2, v):
    return v @ jax.nn.relu(w2 @ jax.nn.relu(w1 @ x))


def test_two_layer_net_plain_guided_and_deconvnet_differ_as_theory_says():
    k = jax.random.split(jax.random.key(3), 4)
    w1, w2 = jax.random.normal(k[0], (8, 5)), jax.random.normal(k[1], (7, 8))
    v, x = jax.random.normal(k[2], (7,)), jax.random.normal(k[3], (5,))
    f = functools.partial(two_layer, w1=w1, w2=w2, v=v)
    h1 = w1 @ x
    h2 = w2 @ jax.nn.relu(h1)
    g2 = v  # signal arriving at relu2's output
    plain = w1.T @ ((h1 > 0) * (w2.T @ (g2 * (h2 > 0))))
    g1 = w2.T @ (g2 * (h2 > 0) * (g2 > 0))
    guided = w1.T @ (g1 * (h1 > 0) * (g1 > 0))
    d1 = w2.T @ (g2 * (g2 > 0))
    deconv = w1.T @ (d1 * (d1 > 0))
    got = {
        "plain": jax.grad(f)(x),
        "guided": jax.grad(with_relu_backward(f, "guided"))(x),
        "deconvnet": jax.grad(with_relu_backward(f, "deconvnet"))(x),
    }
    for name, want in {"plain": plain, "guided": guided, "deconvnet": deconv}.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-5, err_msg=name)
    assert not np.allclose(got["plain"], got["guided"])
    assert not np.allclose(got["guided"], got["deconvnet"])
    assert not np.allclose(got["plain"], got["deconvnet"])


def conv_net(params, x):
    """A plain NHWC function with lax.conv, both ReLU spellings and a reduce_window pool."""
    dn = ("NHWC", "HWIO", "NHWC")
    h = jax.nn.relu(lax.conv_general_dilated(x, params["w1"], (1, 1), "SAME", dimension_numbers=dn))
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = jnp.maximum(lax.conv_general_dilated(h, params["w2"], (1, 1), "SAME", dimension_numbers=dn), 0)
    return h.mean(axis=(1, 2)) @ params["v"]


def explicit_conv_net(params, x, relu):
    dn = ("NHWC", "HWIO", "NHWC")
    h = relu(lax.conv_general_dilated(x, params["w1"], (1, 1), "SAME", dimension_numbers=dn))
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = relu(lax.conv_general_dilated(h, params["w2"], (1, 1), "SAME", dimension_numbers=dn))
    return h.mean(axis=(1, 2)) @ params["v"]


@pytest.fixture(scope="module")
def conv_setup():
    k = jax.random.split(jax.random.key(4), 4)
    params = {
        "w1": jax.random.normal(k[0], (3, 3, 2, 4)),
        "w2": jax.random.normal(k[1], (3, 3, 4, 5)) * 0.3,
        "v": jax.random.normal(k[2], (5, 3)),
    }
    x = jax.random.normal(k[3], (2, 6, 6, 2))
    return params, x


@pytest.mark.parametrize("rule,relu", [("guided", guided_relu), ("deconvnet", deconvnet_relu)])
def test_plain_conv_function_matches_explicit_custom_vjp_relus(conv_setup, rule, relu):
    params, x = conv_setup
    score = lambda f: (lambda x: f(params, x)[:, 1].sum())
    rewritten = with_relu_backward(conv_net, rule)
    np.testing.assert_array_equal(rewritten(params, x), conv_net(params, x))
    want = jax.grad(score(functools.partial(explicit_conv_net, relu=relu)))(x)
    np.testing.assert_allclose(jax.grad(score(rewritten))(x), want, rtol=1e-6, atol=1e-6)
    assert not np.allclose(jax.grad(score(conv_net))(x), want)


def test_eager_jit_and_vmap_agree(conv_setup):
    params, x = conv_setup
    rewritten = with_relu_backward(conv_net, "guided")
    grad = jax.grad(lambda x: rewritten(params, x).sum())
    eager = grad(x)
    np.testing.assert_allclose(jax.jit(grad)(x), eager, rtol=1e-6, atol=1e-6)
    per_example = jax.vmap(lambda xi: grad(xi[None])[0])(x)
    np.testing.assert_allclose(per_example, eager, rtol=1e-6, atol=1e-6)


def scan_relu(x):
    return lax.scan(lambda c, _: (jax.nn.relu(c) - 0.5, None), x, None, length=2)[0].sum()


def cond_relu(x):
    return lax.cond(x.sum() > 0, jax.nn.relu, jnp.abs, x).sum()


@jax.custom_vjp
def user_block(x):
    return jnp.maximum(x, 0.0) * 2.0


user_block.defvjp(lambda x: (user_block(x), x), lambda x, g: (g * 2.0,))


@pytest.mark.parametrize(
    "fn,construct", [(scan_relu, "scan"), (cond_relu, "cond"), (lambda x: user_block(x).sum(), "custom_vjp")]
)
def test_relu_in_unsupported_construct_is_an_error(fn, construct):
    with pytest.raises(NotImplementedError, match=construct):
        jax.grad(with_relu_backward(fn, "guided"))(X)


def test_non_relu_maxes_keep_their_gradient():
    not_relu = lambda x: (jnp.maximum(x, 0.5) * jnp.maximum(x, -x)).sum()
    assert relu_equations(jax.make_jaxpr(not_relu)(X)) == []
    f = lambda x: not_relu(x) + jax.nn.relu(x).sum()
    # Deconvnet passes relu(g) = 1 back through the ReLU whatever the sign of x.
    expected = jax.grad(not_relu)(X) + jnp.ones_like(X)
    np.testing.assert_allclose(jax.grad(with_relu_backward(f, "deconvnet"))(X), expected, rtol=1e-6)


def test_pytree_arguments_and_outputs_and_equality():
    f = lambda p, x: {"out": p["v"] @ jax.nn.relu(p["w"] @ x)}
    params = {"v": V, "w": W}
    rewritten = with_relu_backward(f, "guided")
    assert rewritten(params, X)["out"] == f(params, X)["out"]
    assert rewritten == with_relu_backward(f, "guided") and hash(rewritten) == hash(with_relu_backward(f, "guided"))
    with pytest.raises(ValueError, match="rule"):
        with_relu_backward(f, "gradient")


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_a_function_without_relu_is_an_error_not_a_plain_gradient(rule):
    def softplus_net(x):
        return jax.nn.softplus(x @ jnp.ones((3, 2))).sum(-1)

    with pytest.raises(ValueError, match="found no ReLU to rewrite"):
        with_relu_backward(softplus_net, rule)(jnp.ones((4, 3)))


def test_where_that_is_not_a_relu_is_left_alone():
    def f(x):
        h = W @ x
        return V @ (jnp.where(h > 0, h, 1.0) + jnp.where(h > 0, 2.0 * h, 0.0) + jax.nn.relu(h))

    closed = jax.make_jaxpr(f)(X)
    assert [e.primitive.name for e in relu_equations(closed)] == ["custom_jvp_call"]
