"""Mining refuses what it cannot mine, naming the argument; on a mesh it computes what one device does."""

import jax
import numpy as np
import pytest

from interp import explain, nets, sharding
from interp.files import CorruptFileError
from tests.explain.test_mining import MODEL, SIZE, planted

MAPS = planted(16)[0]


@pytest.mark.parametrize("layers,message", [
    (["upper", "conv9"], "layers: unknown layer 'conv9'; known layers: lower, upper"),
    ("pooled", "layers: 'pooled' is not a spatial layer"),
])
def test_an_unknown_or_flat_layer_is_named(layers, message):
    def with_flat(x):
        nets.tap(x.mean(axis=(1, 2)), "pooled")
        return MODEL.apply_fn(MODEL.params, x)

    model = nets.from_function(with_flat) if layers == "pooled" else MODEL
    with pytest.raises(ValueError, match=message):
        explain.explanatory_graph(model, layers, MAPS, progress=False)


def test_fewer_images_than_nodes_and_an_empty_category_are_named():
    with pytest.raises(ValueError, match=r"images: 4 images are fewer than the 15 nodes per filter of layer 'upper'"):
        explain.explanatory_graph(MODEL, ["upper"], MAPS[:4], iterations=1, progress=False)
    with pytest.raises(ValueError, match="images: the category is empty"):
        explain.explanatory_graph(MODEL, ["upper"], MAPS[:0], progress=False)
    bad = MAPS.copy()
    bad[3, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="images: has NaN"):
        explain.explanatory_graph(MODEL, ["upper"], bad, progress=False)
    with pytest.raises(ValueError, match="density: expected one value in"):
        explain.explanatory_graph(MODEL, ["upper"], MAPS, density=0.0, progress=False)
    with pytest.raises(ValueError, match="init: expected one of 'peaks', 'random'"):
        explain.explanatory_graph(MODEL, ["upper"], MAPS, init="kmeans", progress=False)


def test_a_graph_for_other_images_and_a_damaged_file_are_named(tmp_path):
    graph = explain.explanatory_graph(MODEL, ["upper"], MAPS, iterations=1, progress=False)
    with pytest.raises(ValueError, match=r"images: the graph was mined on images of shape \[12, 12, 6\]"):
        explain.infer(graph, MODEL, MAPS[:, :8, :8])
    graph.save(tmp_path / "graph.npz")
    data = bytearray((tmp_path / "graph.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "graph.npz").write_bytes(bytes(data))
    with pytest.raises(CorruptFileError):
        explain.ExplanatoryGraph.load(tmp_path / "graph.npz")


def test_mining_and_inference_on_a_mesh_equal_one_device():
    """Each chunk's images sharded over 8 CPU devices: one EM iteration and the inference agree with one device.

    (Over many iterations, last-bit differences between the two compiled programs could flip an argmax, so
    the check is one iteration deep.)
    """
    assert jax.device_count() >= 2
    mesh = sharding.data_mesh()
    alone = explain.explanatory_graph(MODEL, ["lower", "upper"], MAPS, iterations=1, batch_size=8, progress=False)
    sharded = explain.explanatory_graph(MODEL, ["lower", "upper"], MAPS, iterations=1, batch_size=8, mesh=mesh,
                                        progress=False)
    for a, b in zip(alone.layers, sharded.layers):
        # float32 sums in another order, divided by small competition-normalized weights: 1e-3 of a cell
        np.testing.assert_allclose(np.asarray(b.coord), np.asarray(a.coord), atol=2e-3)
        np.testing.assert_allclose(np.asarray(b.deform), np.asarray(a.deform), rtol=1e-4)
    one = explain.infer(alone, MODEL, MAPS, batch_size=8, progress=False)
    many = explain.infer(alone, MODEL, MAPS, batch_size=8, mesh=mesh, progress=False)
    for name in ("lower", "upper"):
        np.testing.assert_allclose(many[name].positions, one[name].positions, atol=1e-4)
        np.testing.assert_allclose(many[name].scores, one[name].scores, rtol=1e-4, atol=1e-7)
    assert alone.image_shape == (SIZE, SIZE, 6)
