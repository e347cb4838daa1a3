"""The graph's measures: normalized distance by hand, node stability by the release's protocol, few-shot
localization on planted maps."""

import numpy as np
import pytest

from interp import explain, metrics
from tests.explain import release_reference as release
from tests.explain.test_mining import LOWER, MODEL, SIZE, UPPER, mine_planted, planted


def test_normalized_distance_equals_a_hand_computation():
    predicted = np.array([[10.0, 10.0], [0.0, 0.0], [5.0, 5.0]])
    truth = np.array([[[13.0, 14.0], [40.0, 40.0]], [[6.0, 8.0], [0.0, 1.0]], [[1.0, 1.0], [2.0, 2.0]]])
    visible = np.array([[True, True], [True, False], [False, False]])
    # image 0: nearest instance at distance 5; image 1: only the visible one, distance 10; image 2 shows no part
    assert metrics.normalized_distance(predicted, truth, visible, (30, 40)) == pytest.approx((5 + 10) / 2 / 50)
    one = metrics.normalized_distance(predicted[:2], truth[:2, 0], visible[:2, 0], (30, 40))
    assert one == pytest.approx((5 + 10) / 2 / 50)
    assert np.isnan(metrics.normalized_distance(predicted[2:], truth[2:], visible[2:], (30, 40)))
    with pytest.raises(ValueError, match="predicted: has NaN"):
        metrics.normalized_distance(np.full((3, 2), np.nan), truth, visible, (30, 40))
    with pytest.raises(ValueError, match="visible: expected shape"):
        metrics.normalized_distance(predicted, truth, visible[:, :1], (30, 40))


def test_stability_among_the_top_images_equals_the_release():
    """`top_among="all"` is getDistSqrtVar: a unit's top images by score, then those showing the landmark."""
    rng = np.random.default_rng(0)
    n, units, parts = 40, 6, 3
    positions = rng.uniform(0, 64, (n, units, 2))
    scores = rng.uniform(0, 1, (n, units))
    landmarks = rng.uniform(0, 64, (n, parts, 2))
    visible = rng.uniform(size=(n, parts)) < 0.6
    truth = [np.where(visible[:, k, None], landmarks[:, k], np.nan) for k in range(parts)]
    expected = release.dist_sqrt_var(positions.transpose(2, 1, 0), scores.T, 10, truth)
    ours = metrics.location_instability(positions, scores, landmarks, visible, (64, 64), top=10, top_among="all")
    np.testing.assert_allclose(ours.per_filter * np.hypot(64, 64), expected, rtol=1e-10)
    among_visible = metrics.location_instability(positions, scores, landmarks, visible, (64, 64), top=10)
    assert not np.allclose(among_visible.per_filter, ours.per_filter)  # the two protocols differ here


@pytest.fixture(scope="module")
def mined():
    graph, maps, shifts = mine_planted()
    test_maps, test_shifts = planted(40, seed=5)
    return graph, maps, shifts, test_maps, test_shifts


def test_three_shots_localize_a_planted_part_better_than_raw_filter_peaks(mined):
    """A part whose filter also fires elsewhere: nodes tell the two patterns apart, a raw filter's peak does not.

    Upper filter 0 fires on the group-1 place (3, 3) and, weaker, on the group-2 place (3, 8). The part is the
    group-2 place: the filter's peak sits on the other pattern, and only a node tracks it.
    """
    graph, maps, shifts, test_maps, test_shifts = mined
    (_, _, _), (place, _, group) = UPPER[0]
    part = np.asarray(place, np.float64) + shifts[group]  # pixels = cells for this model
    test_part = np.asarray(place, np.float64) + test_shifts[group]
    found = explain.infer(graph, MODEL, maps[:3], progress=False)["upper"]
    found_test = explain.infer(graph, MODEL, test_maps, progress=False)["upper"]
    locator = explain.fit_part_locator(found.positions, found.scores, part[:3], np.ones(3, bool),
                                       image_size=(SIZE, SIZE))
    graph_error = metrics.normalized_distance(
        explain.locate_part(locator, found_test.positions, found_test.scores), test_part, np.ones(40, bool),
        (SIZE, SIZE))
    peaks = explain.filter_peaks(graph, MODEL, maps[:3])["upper"]
    peaks_test = explain.filter_peaks(graph, MODEL, test_maps)["upper"]
    raw = explain.fit_part_locator(peaks.positions, peaks.scores, part[:3], np.ones(3, bool),
                                   image_size=(SIZE, SIZE))
    raw_error = metrics.normalized_distance(explain.locate_part(raw, peaks_test.positions, peaks_test.scores),
                                            test_part, np.ones(40, bool), (SIZE, SIZE))
    assert graph_error < 0.07  # within about a cell of the 12x12 map on average
    assert graph_error < 0.7 * raw_error, (graph_error, raw_error)


def test_nodes_are_steadier_than_filters_that_mix_patterns(mined):
    """Upper filters 0 and 1 each fire on two patterns that move independently (with the object, group 1, and
    with group 2): their peaks jump, their nodes do not."""
    graph, maps, shifts, _, _ = mined
    found = explain.infer(graph, MODEL, maps, progress=False)
    peaks = explain.filter_peaks(graph, MODEL, maps)
    # the landmarks of one object: the places that move with group 1
    places = [np.asarray(place) + shifts[group] for patterns in (UPPER, LOWER) for ps in patterns.values()
              for place, _, group in ps if group == 1]
    landmarks = np.stack(places, axis=1).astype(np.float64)
    result = explain.node_stability(graph, found, peaks, landmarks, np.ones(landmarks.shape[:2], bool), share=1.0)
    assert result["upper"].count == graph.layer("upper").num_channels  # as many nodes as filters
    print(f"MEASURED upper layer: nodes {result['upper'].nodes.value:.4f}, filters {result['upper'].filters.value:.4f}")
    assert result["upper"].nodes.value < 0.8 * result["upper"].filters.value


def test_bad_annotations_are_refused():
    with pytest.raises(ValueError, match="visible: the part is visible on none"):
        explain.fit_part_locator(np.zeros((2, 4, 2)), np.ones((2, 4)), np.zeros((2, 2)), np.zeros(2, bool),
                                 image_size=(8, 8))
    with pytest.raises(ValueError, match="scores: expected shape"):
        explain.fit_part_locator(np.zeros((2, 4, 2)), np.ones((2, 3)), np.zeros((2, 2)), np.ones(2, bool),
                                 image_size=(8, 8))
