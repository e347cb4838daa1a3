"""Explanatory-graph figures cut their patches where they are told and draw each node where its place says."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.collections import LineCollection, PathCollection

from interp import viz
from interp.ops import PATCH_PAD as PAD
from tests.viz.layout import texts_outside


def shown(fig):
    """The image array of every axes that has one, in order."""
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]


@given(row=st.floats(-6, 14), col=st.floats(-6, 14), size=st.integers(1, 7))
def test_image_patch_is_the_image_around_its_centre_padded_outside(row, col, size):
    image = np.random.default_rng(0).uniform(size=(9, 8, 3)).astype(np.float32)
    patch = viz.image_patch(image, (row, col), size)
    assert patch.shape == (size, size, 3)
    top, left = int(np.floor(row + 0.5)) - size // 2, int(np.floor(col + 0.5)) - size // 2
    for i in range(size):
        for j in range(size):
            r, c = top + i, left + j
            want = image[r, c] if 0 <= r < 9 and 0 <= c < 8 else np.full(3, PAD)
            np.testing.assert_array_equal(patch[i, j], want)


def test_a_patch_at_the_border_is_padded_not_shifted():
    image = np.arange(6 * 6 * 3, dtype=np.float32).reshape(6, 6, 3) / 200
    patch = viz.image_patch(image, (0.2, 5.0), 5)
    np.testing.assert_array_equal(patch[2:, :3], image[:3, 3:])  # the centre pixel (0, 5) stays at [2, 2]
    assert (patch[:2] == PAD).all() and (patch[:, 3:] == PAD).all()
    np.testing.assert_array_equal(viz.image_patch(image, (3, 3), 5), image[1:6, 1:6])


def test_node_patches_shows_the_node_then_the_filter_on_their_own_best_images():
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(6, 16, 16, 3))
    node_positions, filter_positions = rng.uniform(0, 15, (6, 2)), rng.uniform(0, 15, (6, 2))
    node_positions[3] = (0, 15)  # the best image's place is a corner
    node_scores = np.array([0.1, 0.5, 0.2, 0.9, 0.0, 0.3])
    filter_scores = np.array([0.4, 0.0, 0.8, 0.1, 0.6, 0.2])
    fig = viz.node_patches(images, node_positions, node_scores, filter_positions, filter_scores, patch_size=6,
                           top=3, title="relu4 node 12")
    patches = shown(fig)
    assert len(patches) == 6
    for got, n in zip(patches[:3], [3, 1, 5]):
        np.testing.assert_allclose(got, viz.image_patch(images[n], node_positions[n], 6))
    for got, n in zip(patches[3:], [2, 4, 0]):
        np.testing.assert_allclose(got, viz.image_patch(images[n], filter_positions[n], 6))
    assert (patches[0][:3] == PAD).all() and (patches[0][:, 4:] == PAD).all()  # the corner's, padded
    np.testing.assert_allclose(patches[0][3:, :4], images[3, :3, 12:])
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["graph node", "raw filter"]
    assert fig.axes[0].get_title() == "#3  0.90" and fig.get_suptitle() == "relu4 node 12"
    assert texts_outside(fig) == []


def test_node_patches_without_filter_peaks_has_one_row_and_checks_shapes():
    images = np.zeros((4, 8, 8, 3))
    fig = viz.node_patches(images, np.zeros((4, 2)), np.arange(4.0), patch_size=4)
    assert len(shown(fig)) == 4 and [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == ["graph node"]
    with pytest.raises(ValueError, match=r"positions \[4, 2\]"):
        viz.node_patches(images, np.zeros((3, 2)), np.arange(4.0), patch_size=4)
    with pytest.raises(ValueError, match="filter_scores"):
        viz.node_patches(images, np.zeros((4, 2)), np.arange(4.0), np.zeros((4, 2)), patch_size=4)


def _graph():
    """Two layers on 4x4 maps: 5 lower nodes (best 3 drawn), 4 upper nodes, 2 parents each."""
    positions = [np.array([[0, 0], [3, 3], [1, 2], [2, 1], [3, 0]], float),
                 np.array([[0, 3], [1, 1], [2, 2], [3, 3]], float)]
    scores = [np.array([0.9, 0.1, 0.5, 0.7, 0.2]), np.array([1.0, 0.2, 0.8, 0.05])]
    parents = [np.array([[3, 0], [1, 2], [0, 3], [2, 1], [1, 0]]), np.zeros((4, 0), int)]
    return ["relu3", "relu4"], positions, scores, parents, [(4, 4), (4, 4)]


def _dots(fig):
    return [c.get_offsets() for c in fig.axes[0].collections if isinstance(c, PathCollection)]


def test_graph_layers_draws_each_layers_best_nodes_in_its_band_with_their_strongest_edges():
    names, positions, scores, parents, shapes = _graph()
    fig = viz.graph_layers(names, positions, scores, parents, shapes, strongest=1, top_nodes=3)
    lower, parents_not_drawn, upper = _dots(fig)
    np.testing.assert_allclose(lower, [[0.125, 0.1 + 0.8 * 0.875], [0.375, 0.1 + 0.8 * 0.375],
                                       [0.625, 0.1 + 0.8 * 0.625]])  # nodes 0, 3, 2 by score
    np.testing.assert_allclose(parents_not_drawn, [[0.875, 1.1 + 0.8 * 0.125]])  # node 0's parent 3
    assert len(upper) == 3 and (upper[:, 1] > 1).all()
    sizes = fig.axes[0].collections[0].get_sizes()
    assert sizes[0] > sizes[1] > sizes[2]
    edges = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)][0].get_segments()
    assert len(edges) == 3
    np.testing.assert_allclose(edges[0], [lower[0], parents_not_drawn[0]])  # node 0 -> upper node 3
    np.testing.assert_allclose(edges[1], [lower[1], upper[1]])  # node 3 -> upper node 2, drawn second
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names
    assert texts_outside(fig) == []


def test_graph_layers_rejects_arrays_that_disagree():
    names, positions, scores, parents, shapes = _graph()
    with pytest.raises(ValueError, match="one entry per layer"):
        viz.graph_layers(names, positions, scores, parents[:1], shapes)
    with pytest.raises(ValueError, match="relu3"):
        viz.graph_layers(names, [positions[0][:4], positions[1]], scores, parents, shapes)
