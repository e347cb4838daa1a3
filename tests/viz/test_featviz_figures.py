"""Feature-visualization figures draw what they are given, where they say."""

import numpy as np

from interp import viz
from tests.viz.layout import texts_outside, texts_over_other_axes


def shown(fig):
    """The image array of every visible axes, in order."""
    return [ax.images[0].get_array() for ax in fig.axes if ax.axison and ax.images]


def test_channel_grid_puts_each_units_patches_beside_it():
    rng = np.random.default_rng(0)
    visualizations = rng.uniform(size=(3, 8, 8, 3))
    patches = rng.uniform(size=(3, 2, 5, 5, 3))
    fig = viz.channel_grid(visualizations, patches, titles=["a", "b", "c"], columns=2)
    images = shown(fig)
    assert len(images) == 3 * 3  # 3 units, each with 2 patches; the empty slot stays hidden
    expected = [visualizations[0], *patches[0], visualizations[1], *patches[1], visualizations[2], *patches[2]]
    for got, want in zip(images, expected):
        np.testing.assert_allclose(got, want)
    assert [ax.get_title() for ax in fig.axes if ax.get_title() in "abc" and ax.get_title()] == ["a", "b", "c"]


def test_channel_grid_says_what_its_titles_mean_inside_the_figure():
    rng = np.random.default_rng(0)
    note = "Titles 'conv3:c  N.Nx': the render's mean activation / the best held-out image's. " * 3
    fig = viz.channel_grid(rng.uniform(size=(8, 8, 8, 3)), rng.uniform(size=(8, 4, 5, 5, 3)),
                           [f"conv3:{c}  2.5x" for c in range(8)], note=note)
    assert fig.get_suptitle().replace("\n", " ").startswith(note[:60])
    assert texts_outside(fig) == []
    assert texts_over_other_axes(fig) == []


def test_semantic_dictionary_figure_titles_channels_with_labeled_values():
    fig = viz.semantic_dictionary_figure(
        np.zeros((16, 16, 3)), (1, 2), 4.0, [7, 3], [2.5, 1.25], np.ones((2, 6, 6, 3)), layer="relu3",
        render_layer="conv3",
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["relu3 position\n(row 1, col 2)", "relu3:7\nactivation 2.50", "relu3:3\nactivation 1.25"]
    note = fig.get_suptitle().replace("\n", " ")
    assert "activation there (relu3's output" in note and "rendered at conv3" in note and "4x4-pixel cell" in note
    box = fig.axes[0].patches[0]
    assert box.get_xy() == (7.5, 3.5) and box.get_width() == 4.0
    assert texts_outside(fig) == []


def test_activation_grid_figure_keeps_its_titles_inside_and_says_what_a_cell_is():
    rng = np.random.default_rng(2)
    fig = viz.activation_grid_figure(rng.uniform(size=(64, 64, 3)), rng.uniform(size=(200, 200, 3)), layer="relu4")
    assert [ax.get_title() for ax in fig.axes] == ["image", "activation grid of relu4"]
    assert "activation vector that relu4 has at position (i, j)" in fig.get_suptitle().replace("\n", " ")
    assert texts_outside(fig) == []
    assert texts_over_other_axes(fig) == []


def test_reconstruction_grid_has_a_column_per_layer():
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(2, 6, 6, 3))
    recon = {"relu1": rng.uniform(size=(2, 6, 6, 3)), "relu4": rng.uniform(size=(2, 6, 6, 3))}
    fig = viz.reconstruction_grid(images, recon)
    drawn = shown(fig)
    wanted = [images[0], recon["relu1"][0], recon["relu4"][0], images[1], recon["relu1"][1], recon["relu4"][1]]
    for got, want in zip(drawn, wanted):
        np.testing.assert_allclose(got, want)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image", "relu1", "relu4"]
    assert texts_outside(fig) == []
