"""Location instability and part interpretability (Interpretable CNNs) on constructed peaks and planted units."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax import lax

from interp import metrics, nets, ops
from interp.data import in_memory
from interp.nets import ReceptiveField, receptive_fields

ALL_VISIBLE = np.ones((4, 2), bool)


def test_location_instability_equals_a_hand_computation():
    # 4 images, landmark 0 at (0, 0) and landmark 1 at (0, 20) on every image; image 30 x 40, diagonal 50.
    landmarks = np.tile(np.array([[0.0, 0.0], [0.0, 20.0]]), (4, 1, 1))
    peaks = np.array([
        [[0, 5], [0, 0]],     # filter 0 at distances (5, 15), filter 1 at (0, 20)
        [[0, 20], [0, 10]],   # (20, 0) and (10, 10)
        [[24, 10], [0, 20]],  # (26, 26) and (20, 0)
        [[15, 20], [0, 10]],  # (25, 15) and (10, 10)
    ], np.float64)
    scores = np.arange(8.0).reshape(4, 2)
    result = metrics.location_instability(peaks, scores, landmarks, ALL_VISIBLE, (30, 40))
    # Filter 0: distances to landmark 0 are 5, 20, 26, 25 (mean 19, squared deviations 196 + 1 + 49 + 36 = 282,
    # variance 282 / 3 = 94); to landmark 1: 15, 0, 26, 15 (mean 14, 1 + 196 + 144 + 1 = 342, variance 114).
    # Filter 1: 0, 10, 20, 10 and 20, 10, 0, 10 (mean 10, 100 + 0 + 100 + 0 = 200, variance 200 / 3 each).
    expected_parts = np.array([[math.sqrt(94), math.sqrt(114)], [math.sqrt(200 / 3)] * 2]) / 50
    expected = np.array([(math.sqrt(94) + math.sqrt(114)) / 2, math.sqrt(200 / 3)]) / 50
    np.testing.assert_allclose(result.per_part, expected_parts, rtol=1e-12)
    np.testing.assert_allclose(result.per_filter, expected, rtol=1e-12)
    assert result.value == pytest.approx(expected.mean(), rel=1e-12)
    # The most stable half of the filters: filter 1 alone.
    assert metrics.location_instability(peaks, scores, landmarks, ALL_VISIBLE, (30, 40),
                                        stable_fraction=0.5).value == pytest.approx(expected[1], rel=1e-12)


def test_top_takes_the_best_scoring_images_among_those_where_the_landmark_shows():
    # One landmark at (0, 0); both filters peak at distance d from it. Image 2 scores highest for
    # filter 0 but hides the landmark; image 0 is filter 0's worst and filter 1's best.
    d = np.array([9.0, 3.0, 50.0, 5.0, 1.0])
    peaks = np.stack([np.zeros(5), d], axis=-1)[:, None, :].repeat(2, axis=1)  # [5, 2, 2]
    score0 = np.array([0.2, 0.9, 0.95, 0.5, 0.7])
    scores = np.stack([score0, -score0], axis=1)
    visible = np.array([[True], [True], [False], [True], [True]])
    result = metrics.location_instability(peaks, scores, np.zeros((5, 1, 2)), visible, (6, 8), top=3)
    # Filter 0 keeps images 1, 4, 3: d = 3, 1, 5, std 2 (taking the top 3 first and then dropping image 2
    # would give std(3, 1) = sqrt 2; ignoring visibility, std(50, 3, 1)). Filter 1 keeps 0, 3, 4:
    # d = 9, 5, 1, std 4 (ignoring `top`: std(9, 5, 1, 3)). The diagonal is 10.
    np.testing.assert_allclose(result.per_filter, [0.2, 0.4], rtol=1e-12)


@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50)), min_size=3, max_size=12),
       st.tuples(st.integers(-9, 9), st.integers(-9, 9)))
def test_a_peak_that_moves_rigidly_with_the_parts_has_instability_zero(translations, offset):
    # The object (two landmarks 7 px apart) moves; filter 0 stays at a fixed offset from it, filter 1 does not.
    shift = np.array(translations, np.float64)
    n = len(shift)
    landmarks = np.stack([shift + [30, 30], shift + [30, 37]], axis=1)  # [n, 2, 2]
    fixed = landmarks[:, 0] + np.array(offset, np.float64)
    still = np.full((n, 2), 30.0)
    peaks = np.stack([fixed, still], axis=1)
    scores = np.linspace(1.0, 0.0, 2 * n).reshape(n, 2)
    result = metrics.location_instability(peaks, scores, landmarks, np.ones((n, 2), bool), (64, 64))
    assert result.per_filter[0] == pytest.approx(0.0, abs=1e-12)
    if len(set(translations)) > 1:
        assert result.per_filter[1] > 0


def test_a_landmark_seen_on_fewer_than_two_images_leaves_no_value_and_nan_filters_are_dropped():
    landmarks = np.zeros((4, 2, 2))
    peaks = np.array([[[0, 1], [0, 2]], [[0, 3], [0, 2]], [[0, 5], [0, 4]], [[0, 7], [0, 4]]], np.float64)
    scores = np.ones((4, 2))
    visible = np.array([[True, False], [True, True], [True, False], [True, False]])
    with pytest.warns(RuntimeWarning, match="landmark 1 is visible on 1 image"):
        result = metrics.location_instability(peaks, scores, landmarks, visible, (3, 4))
    assert np.isnan(result.per_part[:, 1]).all() and np.isfinite(result.per_part[:, 0]).all()
    assert np.isnan(result.per_filter).all() and math.isnan(result.value)
    # A filter with no value (here a NaN peak) is left out of the layer's mean.
    peaks[2, 1] = np.nan
    result = metrics.location_instability(peaks, scores, landmarks[:, :1], visible[:, :1], (3, 4))
    assert np.isnan(result.per_filter[1])
    # Filter 0: distances 1, 3, 5, 7 (mean 4, 9 + 1 + 1 + 9 = 20) over the diagonal 5.
    assert result.value == result.per_filter[0] == pytest.approx(math.sqrt(20 / 3) / 5, rel=1e-12)


def test_peak_positions_map_to_the_center_of_the_receptive_field():
    maps = np.zeros((2, 3, 4, 2), np.float32)
    maps[0, 2, 1, 0] = 5.0
    maps[0, 1, 3, 1] = 1.0
    maps[0, :, :, 1] -= 2.0  # all negative: the maximum is -1 at (1, 3)
    maps[1, 0, 3, 0] = maps[1, 1, 0, 0] = 7.0  # a tie: row-major takes (0, 3) (column-major would take (1, 0))
    maps[1, :, :, 1] = 1.0  # constant: the first unit
    positions, scores = ops.map_peaks(maps)
    np.testing.assert_array_equal(positions, [[[2, 1], [1, 3]], [[0, 3], [0, 0]]])
    np.testing.assert_array_equal(scores, [[5.0, -1.0], [7.0, 1.0]])
    assert positions.dtype == jnp.int32
    # Unit (i, j) sees rows -1 + 2i .. 2i + 2 and columns -2 + 3j .. 3j + 3: center (2i + 0.5, 3j + 0.5).
    field = ReceptiveField(size=(4, 6), stride=(2, 3), start=(-1, -2))
    np.testing.assert_array_equal(metrics.peaks_in_image(positions, field),
                                  [[[4.5, 3.5], [2.5, 9.5]], [[0.5, 9.5], [0.5, 0.5]]])


def pooled_max(x):
    """3 x 3 max pool, stride 2, one pixel of padding: unit (i, j) sees rows 2i - 1 .. 2i + 1, center (2i, 2j)."""
    pool = lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    return nets.tap(pool, "pool").mean((1, 2))


def test_filter_peaks_agrees_with_the_manual_path_and_finds_planted_pixels():
    model = nets.from_function(pooled_max)
    images = 0.1 * jax.random.uniform(jax.random.key(0), (8, 16, 16, 3))
    # A bright pixel at an even (row, col) in each channel: one unit covers it, centered on it.
    pixels = np.array([[[2 * ((i + c) % 8), 2 * ((3 * i + c) % 8)] for c in range(3)] for i in range(8)])
    images = images.at[np.arange(8)[:, None], pixels[..., 0], pixels[..., 1], np.arange(3)[None, :]].set(1.0)
    field = receptive_fields(model, images)["pool"]
    assert field == ReceptiveField(size=(3, 3), stride=(2, 2), start=(-1, -1))

    peaks = metrics.filter_peaks(model, "pool", in_memory(images), batch_size=5)  # a padded last batch
    positions, scores = ops.map_peaks(model.activations(images, "pool")["pool"])
    np.testing.assert_array_equal(peaks.positions, metrics.peaks_in_image(positions, field))
    np.testing.assert_array_equal(peaks.scores, scores)
    np.testing.assert_array_equal(peaks.positions, pixels)
    np.testing.assert_array_equal(peaks.scores, np.ones((8, 3)))
    # A span of a dict source: the same peaks as the old per-batch loop over those images.
    span = metrics.filter_peaks(model, "pool", in_memory({"image": images}), batch_size=2, num_examples=5, first=3)
    looped = [ops.map_peaks(model.activations(images[s : s + 2], "pool")["pool"]) for s in (3, 5, 7)]
    np.testing.assert_array_equal(span.positions,
                                  metrics.peaks_in_image(np.concatenate([p for p, _ in looped]), field))
    np.testing.assert_array_equal(span.scores, np.concatenate([s for _, s in looped]))


def test_bad_inputs_name_what_was_expected():
    peaks, scores = np.zeros((4, 2, 2)), np.zeros((4, 2))
    landmarks = np.zeros((4, 3, 2))
    visible = np.ones((4, 3), bool)

    def instability(**changes):
        args = dict(peaks=peaks, scores=scores, landmarks=landmarks, visible=visible, image_size=(8, 8))
        return metrics.location_instability(**{**args, **changes})

    with pytest.raises(ValueError, match=r"landmarks: expected \(row, col\) positions \[N, P, 2\] with N=4"):
        instability(landmarks=np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"landmarks: expected .* got shape \[5, 3, 2\]"):
        instability(landmarks=np.zeros((5, 3, 2)))
    with pytest.raises(ValueError, match=r"peaks: expected \(row, col\) positions \[N, C, 2\]"):
        instability(peaks=np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"scores: expected \[N, C\] = \[4, 2\]"):
        instability(scores=np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"visible: expected bool \[N, P\] = \[4, 3\]"):
        instability(visible=np.ones((4, 2), bool))
    with pytest.raises(ValueError, match="top: expected an int >= 2"):
        instability(top=1)
    with pytest.raises(ValueError, match=r"stable_fraction: expected a float in \(0, 1\]"):
        instability(stable_fraction=0.0)
    with pytest.raises(ValueError, match=r"image_size: expected \(H, W\)"):
        instability(image_size=64)
    with pytest.raises(ValueError, match=r"maps: expected feature maps \[N, h, w, C\], got shape \[2, 3, 4\]"):
        ops.map_peaks(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"positions: expected unit indices \[..., 2\]"):
        metrics.peaks_in_image(np.zeros((2, 3), np.int32), ReceptiveField((1, 1), (1, 1), (0, 0)))

    model = nets.from_function(pooled_max)
    with pytest.raises(ValueError, match="data: the batch source is empty"):
        metrics.filter_peaks(model, "pool", in_memory(np.zeros((0, 8, 8, 3))))
    with pytest.raises(ValueError, match="data: expected a batch source .*got list"):
        metrics.filter_peaks(model, "pool", [np.zeros((2, 8, 8, 3)), np.zeros((2, 6, 6, 3))])
    with pytest.raises(ValueError, match=r"data: expected batches of images \[B, H, W, C\] .*got shape \[2, 8, 8\]"):
        metrics.filter_peaks(model, "pool", in_memory(np.zeros((2, 8, 8))))
    with pytest.raises(ValueError, match="first: expected an index below len\\(data\\) = 2, got 2"):
        metrics.filter_peaks(model, "pool", in_memory(np.zeros((2, 8, 8, 3))), first=2)
    with pytest.raises(ValueError, match="unknown layer 'conv9'"):
        metrics.filter_peaks(model, "conv9", in_memory(np.zeros((2, 8, 8, 3))))
    flat = nets.from_function(lambda x: nets.tap(x.mean((1, 2)), "mean"))
    with pytest.raises(ValueError, match=r"layer: 'mean' is not a spatial layer \[b, h, w, c\]; its shape is \[2, 3\]"):
        metrics.filter_peaks(flat, "mean", in_memory(np.zeros((2, 8, 8, 3))))


def test_firing_only_leaves_out_images_where_a_filter_is_silent():
    # Filter 0 fires on images 0-2 (peaks track the landmark), is silent on 3-4 (argmax: the corner).
    landmarks = np.array([[[10.0, 10.0]], [[20.0, 14.0]], [[30.0, 30.0]], [[40.0, 8.0]], [[12.0, 44.0]]])
    peaks = np.repeat(landmarks + np.array([2.0, 0.0]), 2, axis=1)  # [5, 2, 2]
    peaks[3:, 0] = 0.0
    scores = np.array([[5.0, 0.0], [4.0, 0.0], [3.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    visible = np.ones((5, 1), bool)
    every = metrics.location_instability(peaks, scores, landmarks, visible, (48, 64))
    firing = metrics.location_instability(peaks, scores, landmarks, visible, (48, 64), firing_only=True)
    assert every.per_filter[0] > 0.1  # the corner's distance to a moving landmark
    assert firing.per_filter[0] == 0.0  # a fixed offset from the part on every image it fires on
    assert np.isnan(firing.per_filter[1])  # fires on one image only
    assert firing.value == 0.0


def test_the_three_readings_of_a_silent_filter():
    """Filter 0 tracks the part before its ReLU on every image but is silent after it on two: the official
    readout (before the ReLU) keeps its argmax, after the ReLU it is the first cell, firing-only drops it."""
    rng = np.random.default_rng(0)
    n = 8
    rows, cols = rng.integers(1, 7, n), rng.integers(1, 7, n)  # the part's cell on each image
    pre = np.full((n, 8, 8, 2), -3.0, np.float32)
    pre[:, :, :, 1] = rng.normal(size=(n, 8, 8))  # filter 1: noise
    pre[np.arange(n), rows, cols, 0] = np.where(np.arange(n) < 6, 2.0, -1.0)  # silent on images 6, 7

    def net(x):
        maps = nets.tap(x[..., :2], "conv")
        return nets.tap(jax.nn.relu(maps), "relu")

    model = nets.from_function(net)
    data = in_memory(pre.repeat(3, axis=-1)[..., :3])  # a pixel per cell: the receptive field is the identity
    field = receptive_fields(model, jnp.zeros((1, 8, 8, 3)))["conv"]
    assert field == ReceptiveField((1, 1), (1, 1), (0, 0))
    landmarks = np.stack([rows, cols], -1)[:, None, :].astype(np.float64)
    visible = np.ones((n, 1), bool)
    official = metrics.location_instability(*metrics.filter_peaks(model, "conv", data), landmarks, visible, (8, 8))
    after = metrics.location_instability(*metrics.filter_peaks(model, "relu", data), landmarks, visible, (8, 8))
    firing = metrics.location_instability(*metrics.filter_peaks(model, "relu", data), landmarks, visible, (8, 8),
                                          firing_only=True)
    assert official.per_filter[0] == 0.0  # the argmax sits on the part on every image
    assert after.per_filter[0] > 0.05  # images 6, 7 read the corner (0, 0)
    assert firing.per_filter[0] == 0.0  # images 6, 7 left out
    np.testing.assert_array_equal(metrics.filter_peaks(model, "relu", data).positions[6:, 0], 0.0)


def test_each_filter_is_measured_on_its_category():
    # Two categories of 4 images; filter 0 scores higher on category 0, filter 1 on category 1. Category 1
    # lacks landmark 1 (never visible there), so its filters are measured against landmark 0 alone.
    landmarks = np.zeros((8, 2, 2))
    landmarks[:, 0] = [[0, 0], [0, 4], [0, 8], [0, 12]] * 2
    landmarks[:, 1] = [[10, 0]] * 8
    visible = np.ones((8, 2), bool)
    visible[4:, 1] = False
    peaks = np.zeros((8, 2, 2))
    peaks[:, 0] = landmarks[:, 0] + [3, 0]  # a fixed offset from landmark 0, and still relative to landmark 1
    peaks[:, 1] = [[5, 5]] * 8
    scores = np.array([[2.0, 1.0]] * 4 + [[1.0, 2.0]] * 4)
    categories = np.repeat([0, 1], 4)
    result = metrics.location_instability(peaks, scores, landmarks, visible, (30, 40), categories=categories)
    np.testing.assert_array_equal(result.category, [0, 1])
    on_own = [metrics.location_instability(peaks[c * 4:(c + 1) * 4, [c]], scores[c * 4:(c + 1) * 4, [c]],
                                           landmarks[c * 4:(c + 1) * 4, parts], visible[c * 4:(c + 1) * 4, parts],
                                           (30, 40)).per_filter[0] for c, parts in ((0, [0, 1]), (1, [0]))]
    np.testing.assert_allclose(result.per_filter, on_own, rtol=1e-12)
    assert np.isnan(result.per_part[1, 1]) and np.isfinite(result.per_part[0, 1])
    assert result.value == pytest.approx(np.mean(on_own))
    with pytest.raises(ValueError, match=r"categories: expected int \[N\] with N=8"):
        metrics.location_instability(peaks, scores, landmarks, visible, (30, 40), categories=categories[:4])


def test_reference_filters():
    rng = np.random.default_rng(1)
    n = 60
    shift = rng.uniform(8, 56, (n, 2))  # a rigid object moving over the image: three landmarks
    landmarks = np.stack([shift, shift + [0, 6], shift + [5, -3]], 1)
    visible = np.ones((n, 3), bool)
    coarse = np.stack(np.meshgrid(np.arange(4) * 16 + 7.5, np.arange(4) * 16 + 7.5, indexing="ij"), -1)
    refs = metrics.reference_instabilities(landmarks, visible, (64, 64), coarse)
    centre = np.broadcast_to([[31.5, 31.5]], (n, 1, 2))
    assert refs["image_centre"] == pytest.approx(
        metrics.location_instability(centre, np.ones((n, 1)), landmarks, visible, (64, 64)).value)
    # On a grid as fine as the pixels a tracker moves exactly with the object; on a 16-pixel grid it is off by
    # up to half a cell, still well below a fixed centre that the object moves away from.
    fine = np.stack(np.meshgrid(np.arange(64.0), np.arange(64.0), indexing="ij"), -1)
    snapped = np.round(shift) - shift  # on the fine grid the landmarks are exact only on whole pixels
    exact = metrics.reference_instabilities(landmarks + snapped[:, None], visible, (64, 64), fine)
    assert exact["part_tracker"] == pytest.approx(0.0, abs=1e-12)
    print(f"MEASURED references {refs}")
    assert 0 < refs["part_tracker"] < 0.75 * refs["image_centre"]
    assert refs["random_cell"] > refs["part_tracker"]
