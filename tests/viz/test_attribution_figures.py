"""The attribution grid says what its rows, colors and numbers are, inside the figure."""

import numpy as np
import pytest

from interp import viz
from interp.data import SynthParts
from tests.viz.layout import texts_outside, texts_over_other_axes

CLASSES = ("bird", "car", "tree")


def grid(overlay=("cam",), title="rows: the first image of each class"):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 8, 8, 3))
    maps = {"saliency": rng.normal(size=(3, 8, 8, 3)), "cam": rng.uniform(size=(3, 8, 8))}
    probabilities = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    return viz.attribution_grid(images, maps, np.array([0, 1, 2]), probabilities, CLASSES, overlay=overlay, title=title)


def color_bar_labels(fig):
    # A horizontal color bar is the only axes here labeled on its x axis.
    return [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]


def test_first_of_each_class_takes_each_classes_earliest_example_round_by_round():
    labels = np.array([2, 2, 0, 1, 0, 2, 1])
    np.testing.assert_array_equal(viz.first_of_each_class(labels, 3), [2, 3, 0])
    np.testing.assert_array_equal(viz.first_of_each_class(labels, 6), [2, 3, 0, 4, 6, 1])
    np.testing.assert_array_equal(viz.first_of_each_class(labels, 7), [2, 3, 0, 4, 6, 1, 5])


def test_first_of_each_class_covers_distinct_classes_of_synthparts():
    data = SynthParts(seed=1, image_size=32, num_classes=6)
    labels = np.asarray(data.batch(np.arange(64, dtype=np.int32))["label"])
    assert len(set(labels.tolist())) == 6  # the data has them all, so the rows must
    rows = viz.first_of_each_class(labels, 6)
    assert sorted(labels[rows].tolist()) == list(range(6))
    assert all(rows[k] == np.flatnonzero(labels == k)[0] for k in range(6))


@pytest.mark.parametrize(("labels", "count", "match"), [
    (np.zeros((2, 3), int), 1, "labels: expected one class per example"),
    (np.arange(4), 0, "count: expected 1..4"),
    (np.arange(4), 5, "count: expected 1..4"),
])
def test_first_of_each_class_rejects_bad_input(labels, count, match):
    with pytest.raises(ValueError, match=match):
        viz.first_of_each_class(labels, count)


def test_prediction_title_names_true_and_predicted_class_with_probability_and_verdict():
    assert viz.prediction_title(1, np.array([0.6, 0.3, 0.1]), CLASSES) == "true: car\npred: bird\np=0.60 (wrong)"
    assert viz.prediction_title(2, np.array([0.1, 0.1, 0.8]), CLASSES) == "true: tree\npred: tree\np=0.80 (right)"


def test_every_row_is_titled_with_its_true_and_predicted_class():
    rows = [ax.get_ylabel() for ax in grid().axes if ax.get_ylabel()]
    assert rows == [
        "true: bird\npred: bird\np=0.70 (right)",
        "true: car\npred: bird\np=0.60 (wrong)",
        "true: tree\npred: tree\np=0.80 (right)",
    ]


def test_color_bars_say_the_maps_are_absolute_and_normalized_per_map():
    labels = color_bar_labels(grid())
    assert len(labels) == 2  # one for maps drawn alone, one for maps over the image
    flat = [label.replace("\n", " ") for label in labels]
    assert "|attribution| / its map's 99th percentile" in flat[0] and "sign dropped" in flat[0]
    assert "over the image" in flat[1] and "cam" in flat[1]
    assert len(color_bar_labels(grid(overlay=()))) == 1


def test_attribution_grid_keeps_every_text_inside_and_off_other_axes():
    fig = grid(title="Rows: the first held-out image of each class. " * 4)
    assert texts_outside(fig) == []
    assert texts_over_other_axes(fig) == []
    assert fig.get_suptitle().startswith("Rows: the first held-out image")


def test_attribution_grid_rejects_misaligned_labels_and_no_maps():
    images = np.zeros((2, 8, 8, 3))
    with pytest.raises(ValueError, match="labels, probabilities: expected \\[2\\]"):
        viz.attribution_grid(images, {"saliency": np.zeros((2, 8, 8))}, np.array([0]), np.ones((2, 3)) / 3, CLASSES)
    with pytest.raises(ValueError, match="maps: expected at least one method"):
        viz.attribution_grid(images, {}, np.array([0, 1]), np.ones((2, 3)) / 3, CLASSES)
