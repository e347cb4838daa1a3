"""Thresholds, upsampling and IoU counts against independent numpy implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from interp import dissect
from interp.dissect.quantile import thresholds_from_top, top_values_init, top_values_update, values_needed
from interp.dissect.tally import Accumulator, _list_true, _pack_bits, _popcount, _running_count, zero_counts
from interp.dissect.upsample import interpolation_matrix, unit_positions
from interp.nets import ReceptiveField
from interp.sharding import batch_sharding, data_mesh
from tests.dissect.reference import brute_force_counts


@given(total_images=st.integers(1, 9), quantile=st.sampled_from([0.005, 0.05, 0.3, 0.9]),
       seed=st.integers(0, 2**16), ties=st.booleans())
def test_streaming_thresholds_equal_numpy_quantile(total_images, quantile, seed, ties):
    rng = np.random.default_rng(seed)
    acts = rng.normal(size=(total_images, 5, 4, 3)).astype(np.float32)
    if ties:  # ReLU maps: most values are exactly zero
        acts = np.maximum(acts, 0.0)
    total = total_images * 5 * 4
    top = top_values_init(3, values_needed(total, quantile))
    for start in range(0, total_images, 2):  # batches of 2, the last one padded
        batch = np.zeros((2, 5, 4, 3), np.float32)
        rows = acts[start:start + 2]
        batch[:len(rows)] = rows
        top = top_values_update(top, jnp.asarray(batch), jnp.arange(2) < len(rows))
    expected = np.quantile(acts.reshape(-1, 3).astype(np.float64), 1 - quantile, axis=0)
    np.testing.assert_allclose(thresholds_from_top(np.asarray(top), total, quantile), expected,
                               rtol=1e-6, atol=1e-7)


def test_thresholds_need_enough_top_values():
    assert values_needed(1000, 0.005) == 6  # position 994.005 reads the 6th and 5th largest
    with pytest.raises(ValueError, match="top: expected the 6 largest of 1000 values per unit, got 5"):
        thresholds_from_top(np.ones((2, 5)), 1000, 0.005)
    with pytest.raises(ValueError, match=r"quantile: expected a float in \(0, 1\)"):
        values_needed(10, 1.5)


def test_resize_upsampling_equals_pil_bilinear():
    rng = np.random.default_rng(0)
    small = rng.normal(size=(5, 7)).astype(np.float32)
    rows, cols = dissect.upsampling_matrices((5, 7), (23, 31), (46, 62), "resize")
    pil = np.asarray(Image.fromarray(small, mode="F").resize((31, 23), Image.BILINEAR))
    np.testing.assert_allclose(rows @ small @ cols.T, pil, atol=1e-5)


def test_receptive_field_upsampling_interpolates_between_field_centers():
    # Units every 4 input pixels, fields 7 wide starting at -3: centers at 0, 4, 8, ...
    field = ReceptiveField(size=(7, 7), stride=(4, 4), start=(-3, -3))
    positions = unit_positions(4, 16, 16, "receptive_field", field)
    np.testing.assert_allclose(positions, [0, 4, 8, 12])
    matrix = interpolation_matrix(positions, 16)
    values = np.array([1.0, 2.0, 4.0, 8.0])
    expected = np.interp(np.arange(16), [0, 4, 8, 12], values)  # clamped past the last center
    np.testing.assert_allclose(matrix @ values, expected, rtol=1e-6)
    # A segmentation at half the input's resolution sees the same centers halved.
    np.testing.assert_allclose(unit_positions(4, 8, 16, "receptive_field", field),
                               [-0.25, 1.75, 3.75, 5.75])
    with pytest.raises(ValueError, match="upsampling: expected one of"):
        unit_positions(4, 8, 16, "nearest")


def _random_problem(rng, num_categories=3, num_concepts=9):
    """Activations, thresholds and labels in interp's compact form, with padding and image labels."""
    batch, h, w, units, seg, width = 5, 3, 4, 6, (6, 8), 5
    acts = rng.normal(size=(batch, h, w, units)).astype(np.float32)
    thresholds = np.quantile(acts, 0.7, axis=(0, 1, 2)).astype(np.float32)
    category_of = rng.integers(0, num_categories, num_concepts).astype(np.int32)
    category_of[0] = -1  # like Broden's label 0: no concept
    ids = np.stack([rng.choice(num_concepts, width, replace=False) for _ in range(batch)]).astype(np.int32)
    masks = rng.random((batch, width, *seg)) < rng.uniform(0.05, 0.5, (batch, width, 1, 1))
    masks[:, -1] = False  # padding entries
    masks[1, 0] = True  # an image-level label
    valid = np.array([True, True, True, True, False])
    return acts, thresholds, seg, ids, masks, valid, category_of


@pytest.mark.parametrize("seed, groups", [(0, 1), (1, 1), (2, 5)])
def test_counts_and_iou_equal_brute_force_for_both_conventions(seed, groups):
    rng = np.random.default_rng(seed)
    acts, thresholds, seg, ids, masks, valid, category_of = _random_problem(rng)
    rows, cols = dissect.upsampling_matrices(acts.shape[1:3], seg, (12, 16), "resize")
    counts = dissect.tally_batch(acts, thresholds, dissect.bands(rows, cols), ids, masks, valid, category_of,
                                 num_concepts=9, num_categories=3, groups=groups)
    up = np.einsum("yi,bijk,xj->byxk", rows, acts, cols)
    expected = brute_force_counts(up > thresholds, ids, masks, valid, category_of, 9, 3)
    for name, value in expected._asdict().items():
        np.testing.assert_array_equal(np.asarray(getattr(counts, name)), value, err_msg=name)

    concepts = dissect.ConceptSet(names=tuple("abcdefghi"), categories=("x", "y", "z"),
                                  category_of=tuple(category_of.tolist()))
    for convention, activation in (("category", expected.activation_category),
                                   ("lite", expected.activation_lite)):
        got = dissect.iou(expected, concepts, convention)
        for k in range(6):
            for c in range(1, 9):
                union = activation[k, category_of[c]] + expected.truth[c] - expected.intersection[k, c]
                want = expected.intersection[k, c] / union if union else 0.0
                assert got[k, c] == pytest.approx(want), (convention, k, c)
        assert not got[:, 0].any()  # index 0 is no concept
    assert concepts.label(0) == "a" and concepts.label(1) == f"{'xyz'[category_of[1]]}/b"


@pytest.mark.parametrize("upsampling, height", [("resize", None), ("resize", 4), ("receptive_field", None)])
def test_bands_hold_the_upsampling_matrices(upsampling, height):
    field = ReceptiveField(size=(9, 9), stride=(4, 4), start=(-4, -4))  # centers on pixels 0, 4, 8, ...
    rows, cols = dissect.upsampling_matrices((6, 7), (37, 45), (24, 28), upsampling, field)
    bands = dissect.bands(rows, cols, height)
    num_bands, band_height, _ = bands.weights.shape
    rebuilt = np.zeros((num_bands * band_height, 6), np.float32)
    for r in range(num_bands):
        for u, unit in enumerate(bands.units[r]):
            rebuilt[r * band_height:(r + 1) * band_height, unit] += bands.weights[r, :, u]
    np.testing.assert_array_equal(rebuilt[:37], rows)
    assert not rebuilt[37:].any() and bands.rows_valid.reshape(-1).tolist() == [y < 37 for y in range(len(rebuilt))]
    np.testing.assert_array_equal(bands.cols, cols)
    assert bands.units.shape[1] <= 3  # a band reads the few rows it lies between
    with pytest.raises(ValueError, match="rows: expected an interpolation matrix"):
        dissect.bands(-rows, cols)
    with pytest.raises(ValueError, match="height"):
        dissect.bands(rows, cols, height=-2)


def _sparse_problem(rng, upsampling):
    """Maps whose units are on at a few pixels (thresholds near each unit's maximum, dead units at 0) or at most."""
    batch, h, w, units, seg = 4, 6, 7, 64, (37, 45)
    acts = rng.normal(size=(batch, h, w, units)).astype(np.float32)
    acts[..., :16] = np.maximum(acts[..., :16], 0)
    acts[..., :4] = 0  # dead units: threshold 0, never on
    thresholds = np.quantile(acts, 0.9, axis=(0, 1, 2)).astype(np.float32)
    thresholds[16:24] = np.quantile(acts[..., 16:24], 0.3, axis=(0, 1, 2))  # below zero: on at most pixels
    # Just below the maximum: on only where a pixel takes a unit's value (a center on a pixel, a clamped border).
    thresholds[40:] = np.nextafter(acts[..., 40:].max((0, 1, 2)), -np.inf)
    field = ReceptiveField(size=(9, 9), stride=(4, 4), start=(-4, -4))
    rows, cols = dissect.upsampling_matrices((h, w), seg, (24, 28), upsampling, field)
    num_concepts = 7
    ids = np.tile(np.arange(num_concepts, dtype=np.int32), (batch, 1))
    masks = rng.random((batch, num_concepts, *seg)) < 0.3
    return acts, thresholds, rows, cols, ids, masks


@pytest.mark.parametrize("upsampling", ["resize", "receptive_field"])
def test_counts_equal_brute_force_where_few_pixels_are_on(upsampling):
    # Rows and columns that fill neither whole bands nor whole 32-bit words,
    # negative activations and thresholds, and more maybe-on bands than one
    # loop step takes.
    rng = np.random.default_rng(7)
    acts, thresholds, rows, cols, ids, masks = _sparse_problem(rng, upsampling)
    valid = np.array([True, True, False, True])
    category_of = np.array([-1, 0, 0, 1, 1, 2, 2], np.int32)
    counts = dissect.tally_batch(acts, thresholds, dissect.bands(rows, cols), ids, masks, valid, category_of,
                                 num_concepts=7, num_categories=3)
    on = np.einsum("yi,bijk,xj->byxk", rows, acts, cols) > thresholds
    assert on[..., 40:].any() and not on[..., :4].any()
    expected = brute_force_counts(on, ids, masks, valid, category_of, 7, 3)
    for name, value in expected._asdict().items():
        np.testing.assert_array_equal(np.asarray(getattr(counts, name)), value, err_msg=name)
    with pytest.raises(ValueError, match="bands: expected bands from 6x7 maps to a 37x45 segmentation"):
        dissect.tally_batch(acts, thresholds, dissect.bands(rows[:20], cols), ids, masks, valid, category_of,
                            num_concepts=7, num_categories=3)


@pytest.mark.parametrize("maps, seg", [((1, 1), (9, 11)), ((12, 10), (5, 7)), ((3, 40), (33, 20))])
def test_counts_equal_brute_force_for_one_pixel_maps_and_maps_finer_than_the_segmentation(maps, seg):
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(3, *maps, 5)).astype(np.float32)
    thresholds = np.quantile(acts, 0.6, axis=(0, 1, 2)).astype(np.float32)
    rows, cols = dissect.upsampling_matrices(maps, seg, (2 * seg[0], 2 * seg[1]), "resize")
    ids = np.tile(np.arange(4, dtype=np.int32), (3, 1))
    masks = rng.random((3, 4, *seg)) < 0.4
    valid, category_of = np.ones(3, bool), np.array([-1, 0, 1, 1], np.int32)
    counts = dissect.tally_batch(acts, thresholds, dissect.bands(rows, cols), ids, masks, valid, category_of,
                                 num_concepts=4, num_categories=2)
    on = np.einsum("yi,bijk,xj->byxk", rows, acts, cols) > thresholds
    expected = brute_force_counts(on, ids, masks, valid, category_of, 4, 2)
    for name, value in expected._asdict().items():
        np.testing.assert_array_equal(np.asarray(getattr(counts, name)), value, err_msg=name)


@pytest.mark.parametrize("size", [1, 31, 32, 1000, 40_000])
def test_listing_true_entries_equals_numpy(size):
    flags = np.random.default_rng(size).random(size) < 0.3
    np.testing.assert_array_equal(_running_count(jnp.asarray(flags)), np.cumsum(flags))
    listed, count = _list_true(jnp.asarray(flags), 256)
    assert int(count) == flags.sum() and len(listed) % 256 == 0
    np.testing.assert_array_equal(listed[:count], np.flatnonzero(flags))


def test_packed_masks_intersect_as_booleans():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3, 96)) < 0.4
    both = _popcount(_pack_bits(jnp.asarray(a))[:, None, :] & _pack_bits(jnp.asarray(b))[None, :, :]).sum(-1)
    np.testing.assert_array_equal(both, (a[:, None, :] & b[None, :, :]).sum(-1))


@pytest.mark.skipif(jax.device_count() < 2, reason="needs several devices (the suite forces 8 CPU devices)")
def test_a_sharded_batch_is_tallied_where_it_lies():
    # One group per device keeps each device on its own images: the compiled
    # tally sums counts across devices (all-reduce) but gathers no images.
    rng = np.random.default_rng(3)
    acts, thresholds, seg, ids, masks, valid, category_of = _random_problem(rng)
    devices = jax.device_count()
    acts, ids, masks, valid = (np.concatenate([a] * devices) for a in (acts, ids, masks, valid))
    bands = dissect.bands(*dissect.upsampling_matrices(acts.shape[1:3], seg, (12, 16), "resize"))
    sharding = batch_sharding(data_mesh())
    sharded = [jax.device_put(a, sharding) for a in (acts, ids, masks, valid)]
    args = (sharded[0], thresholds, bands, *sharded[1:], category_of)
    options = dict(num_concepts=9, num_categories=3, groups=devices)
    assert "all-gather" not in dissect.tally_batch.lower(*args, **options).compile().as_text()
    counts = dissect.tally_batch(*args, **options)
    single = dissect.tally_batch(acts, thresholds, bands, ids, masks, valid, category_of,
                                 num_concepts=9, num_categories=3)
    for name in counts._fields:
        np.testing.assert_array_equal(getattr(counts, name), getattr(single, name), err_msg=name)
    with pytest.raises(ValueError, match="groups: expected a divisor of the batch size"):
        dissect.tally_batch(acts[:5], thresholds, bands, ids[:5], masks[:5], valid[:5], category_of,
                            num_concepts=9, num_categories=3, groups=2)


def test_accumulator_moves_counts_to_int64_before_int32_overflows():
    unit = zero_counts(1, 1, 1, np.int32)._replace(activation=np.array([2**30], np.int32))
    accumulator = Accumulator(per_batch_bound=2**30)  # flushes every other batch
    for _ in range(5):
        accumulator.add(jax.tree.map(jnp.asarray, unit))
    assert accumulator.result().activation.tolist() == [5 * 2**30]
    assert accumulator.result().activation.dtype == np.int64
