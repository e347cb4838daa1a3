"""Sweeps: the grouping is invisible in the table, a rerun skips what is written, bad configs fail before work."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from interp import attribution as attr
from interp import featviz, metrics, nets, sharding, sweep
from interp.data import SynthParts
from interp.dissect import SynthPartsConcepts, dissect
from interp.files import ConfigMismatchError, CorruptFileError

IMAGE = 32
DATA = SynthParts(seed=1, image_size=IMAGE, num_classes=4)
MODULE = nets.create_module("small_cnn", num_classes=4, channels=(8, 8, 16, 16))


def tiny_model(seed: int = 0) -> nets.Model:
    return nets.as_model(MODULE, MODULE.init(jax.random.key(seed), jnp.zeros((1, IMAGE, IMAGE, 3))))


MODELS = sweep.InMemory({"a": sweep.Subject(tiny_model(0), DATA), "b": sweep.Subject(tiny_model(1), DATA)})
MESH = sharding.data_mesh(jax.devices()[:2])  # sharded calls, at a fraction of 8 devices' compile time
RENDER = sweep.Render(steps=6, image_size=IMAGE, units_per_call=3)


def render_alone(model, layer, unit, seed):
    """One cell rendered without vmap or mesh, from the keys the sweep documents."""
    transforms_key, starts_key = jax.random.split(jax.random.key(seed))
    init_key = jax.random.fold_in(starts_key, unit)
    run = featviz.make_render(featviz.channel(layer, unit), param=featviz.image(IMAGE), steps=RENDER.steps,
                              optimizer=optax.adam(RENDER.learning_rate))
    rendering = jax.jit(run)(model, transforms_key, init_key)
    return np.asarray(rendering.images[-1, 0]), float(rendering.scores[-1, 0])


def test_render_sweep_rows_equal_each_cell_rendered_alone(tmp_path):
    grid = sweep.Sweep(RENDER, models=("a", "b"), layers=("relu2",), units=(0, 3, 5, 7), seeds=(0, 1))
    rows = sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)
    assert [(r["model"], r["seed"], r["unit"]) for r in rows] == [
        (m, s, u) for m in "ab" for s in (0, 1) for u in (0, 3, 5, 7)]
    assert len({r["group"] for r in rows}) == 8  # 4 units per (model, seed) in calls of at most 3
    store = sweep.Store(tmp_path)
    for row in (rows[0], rows[3], rows[13]):  # the first and the last of a call, and one of model b
        image, score = render_alone(MODELS.load(row["model"]).model, "relu2", row["unit"], row["seed"])
        np.testing.assert_allclose(store.arrays(row)["image"], image, atol=2e-4)
        assert row["score"] == pytest.approx(score, rel=1e-3, abs=1e-5)
    table = [json.loads(line) for line in (tmp_path / sweep.TABLE).read_text().splitlines()]
    assert table == sweep.read_table(tmp_path) == rows


def test_dissect_sweep_rows_equal_each_layer_dissected_alone(tmp_path):
    measure = sweep.Dissect(images=32, batch_size=16)
    grid = sweep.Sweep(measure, models=("a",), layers=("relu2", "relu3"))
    rows = sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)
    assert len(rows) == 8 + 16 and len({r["group"] for r in rows}) == 1  # every layer in one pass
    alone = dissect(MODELS.load("a").model, SynthPartsConcepts(DATA, num_examples=32), ["relu3"], batch_size=16)
    category, concept, iou = alone["relu3"].best
    for row in rows[8:]:
        unit = row["unit"]
        assert row["concept"] == alone["relu3"].concepts.names[concept[unit]]
        assert row["iou"] == pytest.approx(float(iou[unit]), abs=1e-12)
        assert row["detector"] == bool(iou[unit] > measure.iou_threshold)


def test_attribution_sweep_rows_equal_each_seed_scored_alone(tmp_path):
    measure = sweep.Attribution(images=8, smooth_samples=4, seeds_per_call=2)
    grid = sweep.Sweep(measure, models=("a",), methods=("smooth_grad", "grad_cam"), seeds=(0, 1, 2))
    rows = sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)
    assert len({r["group"] for r in rows}) == 4  # 3 seeds per method in calls of at most 2
    model = MODELS.load("a").model
    for row in (rows[1], rows[2], rows[5]):
        batch = DATA.batch(jnp.arange(8) + 8 * row["seed"])
        if row["method"] == "smooth_grad":
            maps = attr.smooth_grad(attr.saliency(model), samples=4)(batch["image"], batch["label"],
                                                                      key=jax.random.key(row["seed"]))
        else:
            maps = attr.grad_cam(model, "relu4")(batch["image"], batch["label"])
        maps = metrics.pixel_map(maps, (IMAGE, IMAGE), reduce="abs")
        mass = float(metrics.mass_in_mask(maps, batch["object_mask"], mode="abs").mean())
        assert row["mass_in_object"] == pytest.approx(mass, rel=1e-4)


def test_rerun_skips_written_groups_and_redoes_only_a_deleted_one(tmp_path, monkeypatch):
    grid = sweep.Sweep(RENDER, models=("a",), layers=("relu2",), units=(0, 1, 2, 3), seeds=(0,))
    rows = sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)
    measured = []
    original = sweep.Render.measure
    monkeypatch.setattr(sweep.Render, "measure", lambda self, s, cells, mesh: measured.append(cells) or
                        original(self, s, cells, mesh))
    assert sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False) == rows and measured == []
    first = sweep.plan(grid, MODELS)[0]
    for path in (tmp_path / "groups" / first.id).iterdir():
        path.unlink()
    (tmp_path / "groups" / first.id).rmdir()
    again = sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)
    assert measured == [first.cells]
    assert [r["score"] for r in again] == pytest.approx([r["score"] for r in rows], rel=1e-6)


def test_a_corrupt_group_is_an_error_naming_it(tmp_path):
    grid = sweep.Sweep(RENDER, models=("a",), layers=("relu2",), units=(0,), seeds=(0,))
    sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)
    cells = next((tmp_path / "groups").glob("*/cells.json"))
    cells.write_text(cells.read_text().replace('"score": ', '"score": 1'))
    with pytest.raises(CorruptFileError, match=str(cells)):
        sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)


@pytest.mark.parametrize("change, message", [
    (dict(layers=("relu9",)), r"layers: 'a' has no layer 'relu9'; its layers: conv1, relu1"),
    (dict(units=(16,)), r"units: \[16\] are not units of 'relu2' of 'a' \(it has 8, 0..7\)"),
    (dict(models=("a", "c")), r"models: no model named 'c'; known: a, b"),
    (dict(methods=("saliency",)), r"methods: render has no method axis"),
])
def test_a_config_naming_what_does_not_exist_fails_before_any_work(tmp_path, change, message):
    axes = {**dict(models=("a",), layers=("relu2",), units=(0,), seeds=(0,)), **change}
    with pytest.raises(ValueError, match=message):
        sweep.run(sweep.Sweep(RENDER, **axes), tmp_path / "work", MODELS, mesh=MESH, progress=False)
    assert not (tmp_path / "work").exists()


def test_unknown_attribution_method_fails_before_any_work(tmp_path):
    grid = sweep.Sweep(sweep.Attribution(images=8), models=("a",), methods=("saliency", "lime"), seeds=(0,))
    with pytest.raises(ValueError, match=r"methods: unknown 'lime'; known: saliency, gradient_x_input"):
        sweep.run(grid, tmp_path / "work", MODELS, mesh=MESH, progress=False)
    assert not (tmp_path / "work").exists()


def test_a_workdir_of_another_sweep_config_is_refused_saying_how_they_differ(tmp_path):
    grid = sweep.Sweep(RENDER, models=("a",), layers=("relu2",), units=(0,), seeds=(0,))
    sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)
    other = sweep.Sweep(sweep.Render(steps=7, image_size=IMAGE, units_per_call=3), models=("a",),
                        layers=("relu2",), units=(0, 1), seeds=(0,))
    with pytest.raises(ConfigMismatchError, match=r"sweep.json was written with another config \(options: .*"
                                                  r"'steps': 6.* there, .*'steps': 7.* now; units: \[0\] there, "
                                                  r"\[0, 1\] now\)"):
        sweep.run(other, tmp_path, MODELS, mesh=MESH, progress=False)
    rows = sweep.run(other, tmp_path, MODELS, mesh=MESH, progress=False, force_new_config=True)
    assert [r["unit"] for r in rows] == [0, 1]
    assert len(list((tmp_path / "groups").iterdir())) == 1  # the replaced config's group is gone


def test_every_unit_of_a_layer_when_units_is_empty():
    cells = [g.cells for g in sweep.plan(sweep.Sweep(RENDER, models=("a",), layers=("relu3",), seeds=(0,)), MODELS)]
    assert [c["unit"] for group in cells for c in group] == list(range(16))
    assert [len(group) for group in cells] == [3, 3, 3, 3, 3, 1]


def test_render_each_init_keys_make_a_start_independent_of_position():
    model = tiny_model()
    options = dict(param=featviz.image(IMAGE), steps=3)
    units = jnp.array([2, 5])
    keys = jax.vmap(lambda u: jax.random.fold_in(jax.random.key(9), u))(units)
    both = featviz.render_each(model, lambda u: featviz.channel("relu2", u), units, key=jax.random.key(0),
                               init_keys=keys, **options)
    second = featviz.render_each(model, lambda u: featviz.channel("relu2", u), units[1:], key=jax.random.key(0),
                                 init_keys=keys[1:], mesh=None, **options)
    np.testing.assert_allclose(both.images[1], second.images[0], atol=1e-5)
    with pytest.raises(ValueError, match=r"init_keys: expected 2 keys \(one per objective\), got shape \(1,\)"):
        featviz.render_each(model, lambda u: featviz.channel("relu2", u), units, key=jax.random.key(0),
                            init_keys=keys[:1], **options)


def test_a_corrupt_sweep_json_is_an_error_unless_the_config_is_replaced(tmp_path):
    grid = sweep.Sweep(RENDER, models=("a",), layers=("relu2",), units=(0,), seeds=(0,))
    rows = sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)
    (tmp_path / "sweep.json").write_text((tmp_path / "sweep.json").read_text().replace('"steps": 6', '"steps": 5'))
    with pytest.raises(CorruptFileError, match=r"sweep.json: its contents do not match the checksum"):
        sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False)
    assert sweep.run(grid, tmp_path, MODELS, mesh=MESH, progress=False, force_new_config=True) == rows


def test_a_grown_grid_keeps_the_groups_it_shares_with_the_replaced_one(tmp_path, monkeypatch):
    one_per_call = sweep.Render(steps=6, image_size=IMAGE, units_per_call=1)
    first = sweep.run(sweep.Sweep(one_per_call, models=("a",), layers=("relu2",), units=(0, 1), seeds=(0,)),
                      tmp_path, MODELS, mesh=MESH, progress=False)
    measured = []
    original = sweep.Render.measure
    monkeypatch.setattr(sweep.Render, "measure", lambda self, s, cells, mesh: measured.append(cells) or
                        original(self, s, cells, mesh))
    grown = sweep.run(sweep.Sweep(one_per_call, models=("a",), layers=("relu2",), units=(0, 1, 2), seeds=(0,)),
                      tmp_path, MODELS, mesh=MESH, progress=False, force_new_config=True)
    assert [[c["unit"] for c in cells] for cells in measured] == [[2]]
    assert grown[:2] == first


class Versioned(sweep.InMemory):
    """`MODELS` with an identity per network that the test can change (a retrained checkpoint)."""

    version = "1"

    def describe(self, name):
        return dataclasses.replace(super().describe(name), identity=self.version)


def test_a_network_whose_identity_changed_is_measured_again(tmp_path):
    source = Versioned(MODELS.subjects)
    grid = sweep.Sweep(RENDER, models=("a",), layers=("relu2",), units=(0,), seeds=(0,))
    first = sweep.run(grid, tmp_path, source, mesh=MESH, progress=False)
    source.version = "2"
    again = sweep.run(grid, tmp_path, source, mesh=MESH, progress=False)
    assert first[0]["group"] != again[0]["group"] and first[0]["score"] == again[0]["score"]
    assert [p.name for p in (tmp_path / "groups").iterdir()] == [again[0]["group"]]  # the stale group is gone
