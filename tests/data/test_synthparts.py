"""SynthParts: determinism, ground-truth consistency, the bias knob, argument checks."""

import jax.numpy as jnp
import numpy as np
import pytest

from interp.data import SynthParts

N = 128  # examples for the structural checks


@pytest.fixture(scope="module")
def ds():
    return SynthParts(seed=3, num_classes=10, clutter=1.0)


@pytest.fixture(scope="module")
def batch(ds):
    return {k: np.asarray(v) for k, v in ds.batch(jnp.arange(N, dtype=jnp.int32)).items()}


def test_shapes_and_dtypes(ds, batch):
    h = ds.image_size
    p, a = len(ds.part_names), len(ds.attribute_names)
    expected = {
        "image": ((N, h, h, 3), np.float32),
        "label": ((N,), np.int32),
        "object_mask": ((N, h, h), np.bool_),
        "part_mask": ((N, h, h), np.int32),
        "landmarks": ((N, p, 2), np.float32),
        "landmark_visible": ((N, p), np.bool_),
        "color": ((N, h, h), np.int32),
        "texture": ((N, h, h), np.int32),
        "scene": ((N,), np.int32),
        "attributes": ((N, a), np.bool_),
    }
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
    assert batch["image"].min() >= 0.0 and batch["image"].max() <= 1.0
    assert set(np.unique(batch["label"])) == set(range(ds.num_classes))


def test_example_depends_only_on_seed_and_index(ds):
    alone = ds.batch(jnp.array([7], jnp.int32))
    paired = ds.batch(jnp.array([3, 7], jnp.int32))
    for k in alone:
        np.testing.assert_array_equal(np.asarray(alone[k][0]), np.asarray(paired[k][1]), err_msg=k)
    np.testing.assert_array_equal(ds.example(7)["image"], np.asarray(alone["image"][0]))
    other_seed = SynthParts(seed=4, num_classes=10, clutter=1.0).example(7)
    assert not np.array_equal(other_seed["image"], np.asarray(alone["image"][0]))


def test_part_mask_partitions_object_mask(batch):
    np.testing.assert_array_equal(batch["part_mask"] > 0, batch["object_mask"])
    assert batch["object_mask"].any(axis=(1, 2)).all(), "every image shows its object"


def test_parts_belong_to_the_class(ds, batch):
    # A part id appears in an image only if it is visible there, and then it has a landmark.
    for i in range(N):
        shown = set(np.unique(batch["part_mask"][i])) - {0}
        assert shown == set(np.flatnonzero(batch["landmark_visible"][i]) + 1)


def test_visible_landmarks_lie_on_their_part(ds, batch):
    h = ds.image_size
    b, k = np.nonzero(batch["landmark_visible"])
    rc = np.round(batch["landmarks"][b, k]).astype(int)
    assert ((rc >= 0) & (rc < h)).all()
    np.testing.assert_array_equal(batch["part_mask"][b, rc[:, 0], rc[:, 1]], k + 1)


def test_concept_maps_are_nonzero_exactly_on_the_object(ds, batch):
    obj = batch["object_mask"]
    for name, n in (("color", len(ds.color_names)), ("texture", len(ds.texture_names))):
        np.testing.assert_array_equal(batch[name] > 0, obj, err_msg=name)
        assert batch[name].max() <= n
    assert ((batch["scene"] >= 0) & (batch["scene"] < len(ds.scene_names))).all()
    # One color and one texture per part within an image.
    for i in range(8):
        for part in set(np.unique(batch["part_mask"][i])) - {0}:
            on = batch["part_mask"][i] == part
            assert len(np.unique(batch["color"][i][on])) == 1
            assert len(np.unique(batch["texture"][i][on])) == 1


def test_concept_table_indexes_every_map(ds):
    table = ds.concepts()
    offsets = ds.concept_offsets()
    assert len(set(table)) == len(table)
    assert table[offsets["object"] + 2] == ("object", ds.class_names[2])
    assert table[offsets["part"] + 0] == ("part", ds.part_names[0])
    assert table[offsets["color"] + 8] == ("color", "red")
    assert table[offsets["texture"] + 1] == ("texture", "striped")
    assert table[-1] == ("scene", ds.scene_names[-1])


def test_resolution_independent_ground_truth():
    small, large = SynthParts(seed=1, image_size=64), SynthParts(seed=1, image_size=224)
    idx = jnp.arange(8, dtype=jnp.int32)
    a, b = small.batch(idx), large.batch(idx)
    assert b["image"].shape == (8, 224, 224, 3)
    for k in ("label", "scene", "attributes"):
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
    # Object area fraction agrees across resolutions (same shapes, finer sampling).
    frac = lambda m: np.asarray(m).mean(axis=(1, 2))
    np.testing.assert_allclose(frac(a["object_mask"]), frac(b["object_mask"]), atol=0.02)


@pytest.mark.parametrize("attribute", ["red_tint", "striped_background"])
@pytest.mark.parametrize("bias", [0.0, 0.7])
def test_bias_knob_sets_the_risk_difference(attribute, bias):
    ds = SynthParts(seed=5, image_size=32, bias=bias, bias_class=1, bias_attribute=attribute)
    n = 4096
    out = ds.batch(jnp.arange(n, dtype=jnp.int32))
    attr = np.asarray(out["attributes"][:, ds.attribute_names.index(attribute)])
    in_class = np.asarray(out["label"]) == 1
    diff = attr[in_class].mean() - attr[~in_class].mean()
    # Standard error of a difference of two proportions; 4 sigma keeps flakes < 1e-4.
    se = np.sqrt(0.25 / in_class.sum() + 0.25 / (~in_class).sum())
    assert abs(diff - bias) < 4 * se, (diff, bias, se)
    if attribute == "striped_background":
        np.testing.assert_array_equal(attr, np.asarray(out["scene"]) == ds.scene_names.index("striped"))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(image_size=16), "image_size"),
        (dict(image_size=256), "image_size"),
        (dict(num_classes=1), "num_classes"),
        (dict(num_classes=11), "num_classes"),
        (dict(clutter=1.5), "clutter"),
        (dict(bias=-0.1), "bias"),
        (dict(num_classes=3, bias_class=3), "bias_class"),
        (dict(bias_attribute="green_tint"), "bias_attribute"),
    ],
)
def test_bad_arguments_raise(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SynthParts(**kwargs)


def test_hashable_and_len():
    assert hash(SynthParts()) == hash(SynthParts())
    assert len(SynthParts(num_examples=123)) == 123
