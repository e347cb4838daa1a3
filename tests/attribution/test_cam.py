"""CAM, Grad-CAM and Grad-CAM++: agreement on a GAP + linear head, hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import nets
from interp.attribution import cam, grad_cam, grad_cam_plus_plus

C = 6
MODULE = nets.create_module("small_cnn", num_classes=C)
X = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
VARIABLES = MODULE.init(jax.random.key(1), X)
TARGET = jnp.array([1, 4])


def test_grad_cam_equals_cam_over_layer_area_on_gap_linear_head():
    # relu4 [2, 4, 4, 128] feeds the GAP, so d logit_t / dA_ijc = w[c, t] / 16
    # and Grad-CAM's channel weight is exactly w[c, t] / (h' w'): Grad-CAM with
    # relu=False is CAM / 16, and with relu it is relu(CAM) / 16.
    c_map = cam(MODULE, "relu4", variables=VARIABLES, upsample=False)(X, TARGET)
    assert c_map.shape == (2, 4, 4)
    g_raw = grad_cam(MODULE, "relu4", relu=False, variables=VARIABLES, upsample=False)(X, TARGET)
    np.testing.assert_allclose(g_raw, c_map / 16, rtol=1e-4, atol=1e-6)
    g = grad_cam(MODULE, "relu4", variables=VARIABLES, upsample=False)(X, TARGET)
    np.testing.assert_allclose(g, jax.nn.relu(c_map) / 16, rtol=1e-4, atol=1e-6)


def test_explicit_class_weights_and_upsampling():
    model = nets.as_model(MODULE, VARIABLES)
    kernel = VARIABLES["params"]["logits"]["kernel"]
    up = cam(model, "relu4", class_weights=kernel)(X, TARGET)
    assert up.shape == (2, 32, 32)
    raw = cam(model, "relu4", upsample=False)(X, TARGET)
    np.testing.assert_allclose(up, jax.image.resize(raw, (2, 32, 32), "bilinear"), rtol=1e-5, atol=1e-6)


def test_grad_cam_plus_plus_is_nonnegative():
    maps = grad_cam_plus_plus(MODULE, "relu3", variables=VARIABLES)(X, TARGET)
    assert maps.shape == (2, 32, 32) and bool(jnp.all(maps >= 0))


def test_grad_cam_plus_plus_single_positive_channel_by_hand():
    # Features A [1, 3, 3, 2] are the input; logits = mean_ij(A) @ w. Only
    # channel 0 has a positive weight for class 0, so g_ij0 = w0 / 9 and
    # alpha = g^2 / (2 g^2 + sum_ij A_ij0 g^3); the weight is 9 alpha g.
    w = jnp.array([[2.0, -1.0], [-3.0, 1.0]])  # [channels, classes]

    def net(x):
        a = nets.tap(x, "features")
        return a.mean(axis=(1, 2)) @ w

    model = nets.from_function(net)
    a = jax.random.uniform(jax.random.key(2), (1, 3, 3, 2))
    g = 2.0 / 9
    alpha = g**2 / (2 * g**2 + float(a[0, :, :, 0].sum()) * g**3)
    expected = jax.nn.relu(9 * alpha * g * a[0, :, :, 0])
    got = grad_cam_plus_plus(model, "features", upsample=False)(a, 0)
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-7)


def test_many_targets_equal_separate_calls():
    target = jnp.tile(jnp.arange(C), (2, 1))
    for method in (grad_cam, grad_cam_plus_plus, cam):
        attribute = method(MODULE, "relu4", variables=VARIABLES, upsample=False)
        many = attribute(X, target)
        assert many.shape == (2, C, 4, 4)
        for j in range(C):
            np.testing.assert_allclose(many[:, j], attribute(X, j), rtol=1e-4, atol=1e-6)


def test_bad_inputs_raise_named_errors():
    with pytest.raises(ValueError, match="unknown layer 'conv9'"):
        grad_cam(MODULE, "conv9", variables=VARIABLES)(X, 0)
    with pytest.raises(ValueError, match="not a spatial layer"):
        grad_cam(MODULE, "gap", variables=VARIABLES)(X, 0)
    with pytest.raises(ValueError, match="target: class indices"):
        grad_cam(MODULE, "relu4", variables=VARIABLES)(X, C)
    with pytest.raises(ValueError, match="target: class indices"):
        cam(MODULE, "relu4", variables=VARIABLES)(X, -1)
    with pytest.raises(ValueError, match="target: CAM needs"):
        cam(MODULE, "relu4", variables=VARIABLES)(X, None)
    with pytest.raises(ValueError, match="x: expected shape"):
        cam(MODULE, "relu4", variables=VARIABLES)(X[0], 0)
    with pytest.raises(ValueError, match="class_weights"):
        cam(nets.from_function(lambda x: nets.tap(x, "f").mean(axis=(1, 2))), "f")(X, 0)
    with pytest.raises(ValueError, match="variables"):
        cam(MODULE, "relu4")
