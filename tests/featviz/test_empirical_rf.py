"""Empirical receptive fields (occlusion) against known windows and the theoretical box."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from interp import nets
from interp.featviz import empirical_receptive_field
from interp.nets import ReceptiveField, receptive_fields


@pytest.fixture(scope="module")
def small_cnn():
    """A randomly initialized SmallCNN; its params fit any input size (GAP head)."""
    return nets.create("small_cnn", num_classes=3, key=jax.random.key(9), input_size=32)


def window_net(x):
    """Unit (i, j) is the sum of x[2i:2i+5, 2j:2j+5, :]: its field is exactly that window."""
    kernel = jnp.ones((5, 5, x.shape[-1], 1))
    return nets.tap(
        lax.conv_general_dilated(x, kernel, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")), "win"
    )


@pytest.mark.parametrize("patch", [1, 3])
def test_empirical_field_of_a_known_window(patch):
    n, side = 3, 24
    images = 0.1 * jax.random.uniform(jax.random.key(6), (n, side, side, 3))
    peaks = [(2, 3), (5, 5), (7, 1)]  # interior units; a bright block makes each the peak
    for k, (i, j) in enumerate(peaks):
        images = images.at[k, 2 * i : 2 * i + 5, 2 * j : 2 * j + 5].add(1.0)
    rf = receptive_fields(window_net, images)["win"]
    assert rf == ReceptiveField((5, 5), (2, 2), (0, 0))
    result = np.asarray(
        empirical_receptive_field(window_net, "win", 0, images, key=jax.random.key(7), patch=patch, stride=1)
    )
    # Re-centered, every window covers rows/cols side // 2 - 2 .. side // 2 + 2; a
    # patch changes the unit when it overlaps the window, so the support grows by patch - 1.
    expected = np.zeros((side, side), bool)
    lo, hi = side // 2 - 2 - (patch - 1), side // 2 + 2 + (patch - 1)
    expected[lo : hi + 1, lo : hi + 1] = True
    np.testing.assert_array_equal(result > 0, expected)


def test_empirical_field_of_small_cnn_lies_in_the_theoretical_box(small_cnn):
    images, model = jax.random.uniform(jax.random.key(8), (4, 32, 32, 3)), small_cnn
    patch = 3
    for layer, channel in (("conv2", 5), ("pool2", 1)):
        rf = receptive_fields(model, images)[layer]
        result = np.asarray(empirical_receptive_field(
            model, layer, channel, images, key=jax.random.key(10), patch=patch, stride=2, chunk_size=128))
        lo = 32 // 2 - (rf.size[0] - 1) // 2 - (patch - 1)
        box = np.zeros((32, 32), bool)
        box[lo : lo + rf.size[0] + 2 * (patch - 1), lo : lo + rf.size[1] + 2 * (patch - 1)] = True
        assert (result > 0).sum() > 0.25 * rf.size[0] * rf.size[1], layer  # most of the field responds
        assert not (result[~box] > 0).any(), layer


def test_empirical_field_rejects_global_layers_and_bad_channels(small_cnn):
    images, model = jnp.ones((2, 32, 32, 3)), small_cnn
    with pytest.raises(ValueError, match="layer"):
        empirical_receptive_field(model, "gap", 0, images, key=jax.random.key(0))
    with pytest.raises(ValueError, match="channel"):
        empirical_receptive_field(model, "conv2", 32, images, key=jax.random.key(0))
