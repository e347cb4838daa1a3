"""Decision-tree figures: the tree's top levels box by box under their parents, and a rationale's bars and outlines."""

import numpy as np
import pytest

from interp import viz
from tests.viz.layout import texts_outside


def _tree():
    # root 0 with children 1, 2, 3 (sizes 5, 2, 1); 1 has children 4, 5; 4 has 6, 7 (below the drawn depth).
    parent = np.array([-1, 0, 0, 0, 1, 1, 4, 4])
    size = np.array([8, 5, 2, 1, 3, 2, 2, 1])
    return parent, size, [f"node {i}" for i in range(8)]


def boxes(fig):
    return {t.get_text(): t for t in fig.axes[0].texts}


def test_tree_levels_draws_each_level_under_its_parent_largest_first():
    parent, size, text = _tree()
    fig = viz.tree_levels(parent, text, size, depth=2)
    drawn = boxes(fig)
    assert set(drawn) == {f"node {i}" for i in range(6)}  # levels 0-2, not 6 and 7
    y = {name: t.get_position()[1] for name, t in drawn.items()}
    assert y["node 0"] > y["node 1"] == y["node 2"] == y["node 3"] > y["node 4"] == y["node 5"]
    x = {name: t.get_position()[0] for name, t in drawn.items()}
    assert x["node 1"] < x["node 2"] < x["node 3"]  # by size
    assert len(fig.axes[0].lines) == 5  # one edge per drawn child
    assert not texts_outside(fig)


def test_tree_levels_counts_the_children_it_leaves_out():
    parent, size, text = _tree()
    drawn = boxes(viz.tree_levels(parent, text, size, depth=1, widest=2))
    assert set(drawn) == {"node 0\n(+1 more)", "node 1", "node 2"}
    with pytest.raises(ValueError, match="node_text, size: expected one per node"):
        viz.tree_levels(parent, text[:3], size)


def test_rationale_bars_the_strongest_parts_and_outlines_the_positive_ones():
    values = np.array([0.5, -2.0, 3.0, 0.1, 1.0])
    maps = [np.zeros((4, 4)) for _ in values]
    for k, m in enumerate(maps):
        m[k % 4, k % 4] = 1.0
    fig = viz.rationale(np.zeros((16, 16, 3)), list("abcde"), values, maps, top=4, path="root > 3")
    image_ax, bars_ax = fig.axes
    labels = [t.get_text() for t in bars_ax.get_yticklabels()]
    assert labels == ["a", "e", "b", "c"]  # the 4 largest by magnitude, the largest at the top
    widths = [p.get_width() for p in bars_ax.patches]
    np.testing.assert_allclose(widths, [0.5, 1.0, -2.0, 3.0])
    assert len(image_ax.collections) == 3  # contours of c, e and a: the positive ones among the shown
    assert image_ax.get_xlabel() == "root > 3"
    with pytest.raises(ValueError, match="names, maps: expected one per value"):
        viz.rationale(np.zeros((16, 16, 3)), list("ab"), values, maps)


def test_rationale_outlines_a_map_where_it_fires_on_the_image():
    heat = np.zeros((4, 4))
    heat[0, 3] = 1.0  # the top right cell: pixels 0-3 down, 12-15 across
    fig = viz.rationale(np.zeros((16, 16, 3)), ["a"], np.array([1.0]), [heat])
    vertices = np.concatenate([p.vertices for p in fig.axes[0].collections[0].get_paths()])
    assert vertices[:, 0].min() > 9 and vertices[:, 1].max() < 6
