"""`dissect.dissect` end to end: planted units, a Broden folder, a mesh, bad input."""

import csv
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from interp import dissect, nets
from interp.data import Broden, SynthParts, resize_nearest
from interp.sharding import data_mesh
from tests.data.fixtures import write_broden
from tests.dissect.reference import brute_force_counts

SYNTH = SynthParts(seed=0, image_size=64)


class PlantedImages:
    """SynthParts concepts whose images are concept `planted`'s mask (red) and uniform noise (green)."""

    def __init__(self, planted: int, num_examples: int = 96):
        self.base = dissect.SynthPartsConcepts(SYNTH, num_examples=num_examples)
        self.concepts, self.image_size, self.seg_size = self.base.concepts, self.base.image_size, self.base.seg_size
        self.planted = planted

    def __len__(self):
        return len(self.base)

    def batch(self, indices):
        batch = self.base.batch(indices)
        mask = batch.masks[:, self.planted].astype(jnp.float32)
        noise = jax.vmap(lambda i: jax.random.uniform(jax.random.key(i), mask.shape[1:]))(jnp.asarray(indices))
        images = jnp.stack([mask, noise, jnp.zeros_like(mask)], axis=-1)
        return dissect.ConceptBatch(images, batch.ids, batch.masks)


def pooled_by_2(x):
    """Unit 0: the planted mask averaged over 2 x 2 blocks; unit 1: noise, likewise."""
    pooled = lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4
    return nets.tap(pooled[..., :2], "planted").sum((1, 2, 3))


@pytest.mark.parametrize("category, name", [("part", "wheel"), ("object", "house"), ("color", "red")])
@pytest.mark.parametrize("upsampling", ["receptive_field", "resize"])
def test_a_planted_concept_mask_is_found_with_iou_near_one(category, name, upsampling):
    concept = SYNTH.concepts().index((category, name))
    data = PlantedImages(concept)
    # A unit is "on" at its top `quantile` of positions, so a mask unit can only
    # reach IoU 1 at the quantile equal to the share of pixels the concept fills.
    share = float(np.mean([data.base.batch(np.arange(i, i + 32)).masks[:, concept].mean() for i in (0, 32, 64)]))
    result = dissect.dissect(nets.from_function(pooled_by_2), data, "planted", quantile=share,
                             upsampling=upsampling, batch_size=32)["planted"]
    _, label, score = result.best
    assert data.concepts.label(int(label[0])) == f"{category}/{name}"
    assert score[0] > 0.9
    assert result.detectors[0]


def test_a_noise_unit_is_no_detector_and_the_mask_unit_is():
    data = PlantedImages(SYNTH.concepts().index(("part", "wheel")))
    result = dissect.dissect(nets.from_function(pooled_by_2), data, "planted", batch_size=32)["planted"]
    assert result.iou[1].max() < 0.02 < dissect.DETECTOR_IOU
    assert result.detectors.tolist() == [True, False]
    assert data.concepts.label(int(result.best[1][0])) == "part/wheel"


def small_conv(params, x):
    """A stride-2 conv with a ReLU, named 'conv'."""
    y = lax.conv_general_dilated(x, params, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return nets.tap(jax.nn.relu(y), "conv").mean((1, 2))


@pytest.mark.parametrize("convention", dissect.CONVENTIONS)
def test_a_broden_folder_is_read_and_dissected_end_to_end(tmp_path, convention):
    truth = write_broden(tmp_path / "broden")
    data = dissect.BrodenConcepts(Broden(tmp_path / "broden"))
    assert (data.image_size, data.seg_size) == ((20, 20), (10, 10))
    # Primary categories from c_<category>.csv coverage; 'dog' ties object and part, label.csv says part.
    names = dict(zip(data.concepts.names, data.concepts.category_of))
    assert {n: data.concepts.categories[names[n]] for n in ("black", "dog", "head", "wood", "street", "car")} == {
        "black": "color", "dog": "part", "head": "part", "wood": "material", "street": "scene", "car": "object"}
    model = nets.from_function(small_conv, jax.random.normal(jax.random.key(0), (3, 3, 3, 4)))
    result = dissect.dissect(model, data, "conv", quantile=0.2, convention=convention, upsampling="resize",
                             batch_size=2, top_images=2)["conv"]

    # The same dissection from the fixture's raw truth, in loops.
    images = jnp.asarray(data.batch([0, 1, 2]).images)
    acts = np.asarray(model.activations(images, "conv")["conv"])
    np.testing.assert_allclose(result.thresholds, np.quantile(acts, 0.8, axis=(0, 1, 2)), rtol=1e-6)
    rows, cols = dissect.upsampling_matrices((10, 10), (10, 10), (20, 20), "resize")
    on = np.einsum("yi,bijk,xj->byxk", rows, acts, cols) > result.thresholds.astype(np.float32)
    numbers = sorted(truth["concepts"])
    ids = np.tile(np.array(numbers, np.int32), (3, 1))
    masks = np.zeros((3, len(numbers), 10, 10), bool)
    for image, (seg, labels) in enumerate(zip(truth["seg"], truth["image_labels"])):
        maps = np.concatenate([resize_nearest(m, 10) for m in seg.values()])
        for d, number in enumerate(numbers):
            masks[image, d] = (maps == number).any(0) | any(number in v for v in labels.values())
    expected = brute_force_counts(on, ids, masks, np.ones(3, bool), np.asarray(data.concepts.category_of),
                                  len(data.concepts), len(data.concepts.categories))
    for field, value in expected._asdict().items():
        np.testing.assert_array_equal(getattr(result.counts, field), value, err_msg=field)

    dissect.write_csv(result, tmp_path / "conv.csv")
    with open(tmp_path / "conv.csv") as f:
        rows_read = list(csv.DictReader(f))
    assert list(rows_read[0]) == dissect.csv_columns(data.concepts.categories)
    assert sorted(int(r["unit"]) for r in rows_read) == [1, 2, 3, 4]
    scores = [float(r["score"]) for r in rows_read]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(result.best[2].max())
    summary = json.loads(json.dumps(dissect.summary({"conv": result})))
    layer = summary["layers"]["conv"]
    assert layer["detectors"] == int(result.detectors.sum())
    assert sum(c["detectors"] for c in layer["by_category"].values()) == layer["detectors"]


def test_a_restored_model_and_a_fresh_one_share_the_compiled_steps():
    # A checkpoint restores committed arrays, `init` makes uncommitted ones; either way the steps compile once.
    steps = sys.modules["interp.dissect.dissect"]
    data = dissect.SynthPartsConcepts(SYNTH, num_examples=16)
    module = nets.create_module("small_cnn", num_classes=6)
    variables = module.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    restored = jax.device_put(variables, jax.devices()[0])
    assert jax.tree.leaves(restored)[0].committed and not jax.tree.leaves(variables)[0].committed
    first = dissect.dissect(nets.from_linen(module, restored), data, "relu2", batch_size=16)
    compiled = steps._threshold_step._cache_size(), steps._tally_step._cache_size()
    second = dissect.dissect(nets.from_linen(module, variables), data, "relu2", batch_size=16)
    assert (steps._threshold_step._cache_size(), steps._tally_step._cache_size()) == compiled
    np.testing.assert_array_equal(second["relu2"].counts.intersection, first["relu2"].counts.intersection)


def test_a_sharded_dissection_equals_the_unsharded_one():
    data = dissect.SynthPartsConcepts(SYNTH, num_examples=40)  # 40 = 2 full batches + a ragged one
    model = nets.create("small_cnn", num_classes=6, key=jax.random.key(0))
    alone = dissect.dissect(model, data, ["relu2", "relu3"], batch_size=16)
    sharded = dissect.dissect(model, data, ["relu2", "relu3"], batch_size=16, mesh=data_mesh())
    assert len(jax.devices()) == 8
    for layer in alone:
        np.testing.assert_allclose(sharded[layer].thresholds, alone[layer].thresholds, rtol=1e-6)
        for field in dissect.Counts._fields:
            np.testing.assert_array_equal(getattr(sharded[layer].counts, field), getattr(alone[layer].counts, field))
        np.testing.assert_array_equal(sharded[layer].top_images, alone[layer].top_images)


def test_bad_arguments_name_what_was_expected():
    data = dissect.SynthPartsConcepts(SYNTH, num_examples=8)
    model = nets.create("small_cnn", num_classes=6, key=jax.random.key(0))
    with pytest.raises(ValueError, match="unknown layer"):
        dissect.dissect(model, data, "conv9")
    with pytest.raises(ValueError, match=r"layers: 'logits' is not a spatial layer .*its shape is \[8, 6\]"):
        dissect.dissect(model, data, "logits", batch_size=8)
    with pytest.raises(ValueError, match="convention: expected one of"):
        dissect.dissect(model, data, "relu2", convention="original")
    with pytest.raises(ValueError, match="upsampling: expected one of"):
        dissect.dissect(model, data, "relu2", upsampling="nearest")
    with pytest.raises(ValueError, match=r"quantile: expected a float in \(0, 1\)"):
        dissect.dissect(model, data, "relu2", quantile=0.0)
    with pytest.raises(ValueError, match="batch_size: expected a multiple of the mesh's 8 devices"):
        dissect.dissect(model, data, "relu2", batch_size=12, mesh=data_mesh())
    with pytest.raises(ValueError, match="num_examples: expected a positive int"):
        dissect.SynthPartsConcepts(SYNTH, num_examples=0)
    with pytest.raises(ValueError, match="data: expected a batch source .*got list"):
        dissect.dissect(model, [data.batch(np.arange(8))], "relu2")
