"""The jaxpr toolkit: call bodies, taps, and one way of entering them for every analysis and rewrite."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from interp import nets
from interp.ops import guided_relu, jaxprs, relu_equations, with_relu_backward

DN = ("NHWC", "HWIO", "NHWC")
X = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
PARAMS = {
    "w": jax.random.normal(jax.random.key(1), (3, 3, 3, 4)),
    "v": jnp.array([[1.0, -2.0], [-1.0, 0.5], [2.0, 1.0], [-0.5, -1.0]]),  # mixed signs: guided masks bite
}


def layer(w, x, relu=jax.nn.relu):
    """A strided 3x3 conv (tapped "conv") and its ReLU (tapped "relu")."""
    h = nets.tap(lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=DN), "conv")
    return nets.tap(relu(h), "relu")


def nested(params, x):
    """`layer` inside a jit inside a jit inside a remat, then a linear head."""
    y = jax.checkpoint(jax.jit(jax.jit(layer)))(params["w"], x)
    return y.sum(axis=(1, 2)) @ params["v"]


def flat(params, x, relu=jax.nn.relu):
    """`nested` without the call boundaries."""
    return layer(params["w"], x, relu).sum(axis=(1, 2)) @ params["v"]


def call_path(jaxpr, name):
    """The call primitives from `jaxpr` down to the tap `name`, found through `call_body`."""
    for eqn in jaxpr.eqns:
        if jaxprs.tap_name(eqn) == name:
            return []
        body = jaxprs.call_body(eqn)
        if body is not None and (path := call_path(body[0], name)) is not None:
            return [eqn.primitive.name, *path]
    return None


def test_call_bodies_lead_to_the_nested_taps():
    closed = jax.make_jaxpr(nested)(PARAMS, X)
    remat, *jits = call_path(closed.jaxpr, "relu")
    assert remat in ("remat2", "checkpoint") and jits == ["jit", "jit"]
    assert [jaxprs.tap_name(e) for e in jaxprs.equations(closed.jaxpr) if jaxprs.tap_name(e)] == ["conv", "relu"]
    # jax.nn.relu is a custom_jvp call: its body is found, but only analyses may enter it.
    (relu_call,) = [e for e in jaxprs.equations(closed.jaxpr) if e.primitive.name == "custom_jvp_call"]
    body, consts = jaxprs.call_body(relu_call)
    assert len(body.invars) == len(relu_call.invars) and len(consts) == 0
    assert "custom_jvp_call" in jaxprs.CUSTOM_DERIVATIVE and "custom_jvp_call" not in jaxprs.INLINABLE


def test_control_flow_and_plain_equations_have_no_call_body():
    def loop(x):
        return lax.scan(lambda c, _: (jnp.sin(c), None), x, None, length=2)[0]

    eqns = jaxprs.equations(jax.make_jaxpr(lambda x: lax.cond(True, loop, jnp.cos, x))(X).jaxpr)
    names = {e.primitive.name for e in eqns}
    assert {"cond", "scan", "sin", "cos"} <= names
    assert all(jaxprs.call_body(e) is None for e in eqns)
    assert all(jaxprs.tap_name(e) is None for e in eqns)


def test_one_toolkit_reads_activations_rewrites_relus_and_computes_fields():
    model = nets.from_function(nested, PARAMS)
    # The layer interpreter reads the taps inside remat(jit(jit(...))).
    acts = model.activations(X, ["conv", "relu"])
    reference = flat(PARAMS, X)
    np.testing.assert_allclose(model(X), reference, rtol=1e-5, atol=1e-5)
    h = lax.conv_general_dilated(X, PARAMS["w"], (2, 2), ((1, 1), (1, 1)), dimension_numbers=DN)
    np.testing.assert_allclose(acts["conv"], h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(acts["relu"], jnp.maximum(h, 0), rtol=1e-5, atol=1e-5)
    # The ReLU rewriter finds the same ReLU there: the guided gradient equals
    # that of the function written with guided_relu, unlike the plain gradient.
    closed = jax.make_jaxpr(nested)(PARAMS, X)
    assert [e.primitive.name for e in relu_equations(closed)] == ["custom_jvp_call"]

    def grad_of(f):
        return jax.grad(lambda x: f(PARAMS, x)[:, 0].sum())(X)

    guided = grad_of(with_relu_backward(nested, "guided"))
    np.testing.assert_allclose(guided, grad_of(lambda p, x: flat(p, x, guided_relu)), rtol=1e-5, atol=1e-5)
    assert not np.allclose(guided, grad_of(flat), atol=1e-3)
    # The receptive-field analysis walks into the same bodies.
    field = nets.ReceptiveField((3, 3), (2, 2), (-1, -1))
    assert nets.receptive_fields(model, X) == {"conv": field, "relu": field}
    # And a speed rewrite replaces the conv inside them.
    seen = []

    def count(eqn, invals):
        seen.append(eqn.primitive.name)
        return [eqn.primitive.bind(*invals, **eqn.params)]

    rewritten = jaxprs.rewrite_for_speed(nested, lambda e: e.primitive is lax.conv_general_dilated_p, count)
    np.testing.assert_array_equal(rewritten(PARAMS, X), model(X))
    assert seen == ["conv_general_dilated"]


def test_rewrites_refuse_equations_inside_control_flow():
    def looped(x):
        return lax.scan(lambda c, _: (jax.nn.relu(c), None), x, None, length=2)[0].sum()

    with pytest.raises(NotImplementedError, match="scan"):
        with_relu_backward(looped)(X)
