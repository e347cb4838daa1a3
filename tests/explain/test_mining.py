"""Mining recovers planted structure: feature maps built with known patterns, places, shifts and parents.

The "model" reads its input as two layers of feature maps (a plain function
that taps slices of it), so the maps are exactly what the graph is mined from
and a flipped input has exactly mirrored maps. Two groups of patterns move
with two independent shifts per image, as two parts of an object would;
background cells are zero with a few weak random blips, as ReLU maps are. A
pattern's strength varies from image to image, so the peak of a filter with two
patterns is on one on some images and on the other on the rest: the mixture
the graph is there to separate.
"""

import functools

import numpy as np
import pytest

from interp import explain, nets
from interp.nets import tap

SIZE, N, BLIPS = 12, 60, 1  # map side, images, weak random blips per map
# upper filter -> [(place, strength, group)]; group 0 never moves, groups 1 and 2 move with shifts s1, s2
UPPER = {0: [((3, 3), 1.0, 1), ((3, 8), 0.9, 2)], 1: [((8, 3), 1.0, 1), ((8, 8), 0.9, 2)],
         2: [((5, 5), 1.0, 2)], 3: [((6, 6), 1.0, 0)]}
LOWER = {0: [((4, 4), 1.0, 1)], 1: [((7, 7), 1.0, 2)]}


def planted(n, seed=0):
    """maps [n, SIZE, SIZE, 4 upper + 2 lower channels] and the shifts [3, n, 2] of groups 0, 1, 2."""
    rng = np.random.default_rng(seed)
    maps = np.zeros((n, SIZE, SIZE, 6), np.float32)
    cells = rng.integers(0, SIZE, (n, BLIPS, 6, 2))
    strengths = rng.uniform(0, 0.5, (n, BLIPS, 6))
    for i in range(n):
        for b in range(BLIPS):
            maps[i, cells[i, b, :, 0], cells[i, b, :, 1], np.arange(6)] += strengths[i, b]
    shifts = np.stack([np.zeros((n, 2), int), rng.integers(-1, 2, (n, 2)), rng.integers(-1, 2, (n, 2))])
    for channels, offset in ((UPPER, 0), (LOWER, 4)):
        for c, patterns in channels.items():
            for (row, col), strength, group in patterns:
                rows, cols = row + shifts[group, :, 0], col + shifts[group, :, 1]
                # each image shows a pattern more or less strongly, so a filter's peak jumps between its patterns
                maps[np.arange(n), rows, cols, offset + c] += strength * rng.uniform(0.6, 1.4, n)
    return maps, shifts


def two_layers(x):
    tap(x[..., 4:], "lower")
    tap(x[..., :4], "upper")
    return x.mean(axis=(1, 2))


MODEL = nets.from_function(two_layers)


@functools.lru_cache(maxsize=1)
def mine_planted():
    """(graph, maps, shifts): the graph mined from `planted(N)`, once per process (test_evaluate reuses it).

    The negatives are "other categories": dense random maps, whose per-unit std is alike everywhere.
    """
    maps, shifts = planted(N)
    negatives = np.random.default_rng(1).gamma(1.0, 0.3, (30, SIZE, SIZE, 6)).astype(np.float32)
    graph = explain.explanatory_graph(MODEL, ["upper", "lower"], maps, negatives=negatives, flip=False,
                                      progress=False)
    return graph, maps, shifts


@pytest.fixture(scope="module")
def mined():
    graph, maps, shifts = mine_planted()
    return graph, explain.infer(graph, MODEL, maps, progress=False), maps, shifts


def _tracking(found, layer, channel, place, shift):
    """(node, error): of the channel's nodes whose place stays within a cell of `place + shift` (median over the
    images), the one with the highest mean score; error is its median distance. (-1, inf) when there is none."""
    patterns = layer.num_patterns
    nodes = np.arange(channel * patterns, (channel + 1) * patterns)
    expected = np.asarray(place, np.float64) + shift  # [N, 2]
    errors = np.median(np.linalg.norm(found.cells[:, nodes] - expected[:, None], axis=-1), axis=0)
    near = errors <= 1.0
    if not near.any():
        return -1, float(errors.min())
    best = np.flatnonzero(near)[np.argmax(found.scores.mean(0)[nodes[near]])]
    return nodes[best], float(errors[best])


def test_every_planted_pattern_gets_a_node_that_tracks_it_within_a_cell(mined):
    graph, found, _, shifts = mined
    for name, channels in (("upper", UPPER), ("lower", LOWER)):
        layer = graph.layer(name)
        scores = found[name].scores.mean(0)
        for channel, patterns in channels.items():
            nodes = np.arange(channel * layer.num_patterns, (channel + 1) * layer.num_patterns)
            trackers = []
            for place, _, group in patterns:
                node, error = _tracking(found[name], layer, channel, place, shifts[group])
                assert error <= 1.0, (name, channel, place, error)
                trackers.append(node)
            # a tracking node is far stronger than the filter's nodes that sit on no pattern
            expected = [np.asarray(place) + shifts[group] for place, _, group in patterns]
            bystanders = [n for n in nodes if all(np.median(np.linalg.norm(found[name].cells[:, n] - e, axis=-1)) > 1.5
                                                  for e in expected)]
            assert bystanders
            assert min(scores[trackers]) > 5 * np.mean(scores[bystanders]), (name, channel)


def test_two_patterns_of_one_filter_get_two_nodes(mined):
    """The weaker pattern of a filter is not absorbed by the stronger: a node tracks each, at their own places."""
    graph, found, _, shifts = mined
    layer = graph.layer("upper")
    for channel in (0, 1):
        (a, _, group_a), (b, _, group_b) = UPPER[channel]
        node_a, _ = _tracking(found["upper"], layer, channel, a, shifts[group_a])
        node_b, _ = _tracking(found["upper"], layer, channel, b, shifts[group_b])
        assert node_a != node_b
        places = found["upper"].cells.mean(0)
        assert np.linalg.norm(places[node_a] - places[node_b]) > 3.0


def test_a_stable_pattern_gets_a_smaller_deformation(mined):
    graph, found, _, shifts = mined
    layer = graph.layer("upper")
    still, _ = _tracking(found["upper"], layer, 3, UPPER[3][0][0], shifts[0])
    moving, _ = _tracking(found["upper"], layer, 2, UPPER[2][0][0], shifts[2])
    deform = np.asarray(layer.deform).reshape(-1)
    assert deform[still] < 0.8 * deform[moving], (deform[still], deform[moving])


def test_a_lower_node_chooses_parents_that_move_with_it(mined):
    """Each lower pattern's node takes its best parents among upper nodes of its own group, not the other's."""
    graph, found, _, shifts = mined
    lower, upper = graph.layer("lower"), graph.layer("upper")
    for channel, patterns in LOWER.items():
        place, _, group = patterns[0]
        node, _ = _tracking(found["lower"], lower, channel, place, shifts[group])
        other = 3 - group
        for parent in np.asarray(lower.parents[node])[:5]:
            moves = found["upper"].cells[:, parent] - found["upper"].cells[:, parent].mean(0)
            own = sum(np.corrcoef(moves[:, d], shifts[group][:, d])[0, 1] for d in range(2))
            foreign = sum(np.corrcoef(moves[:, d], shifts[other][:, d])[0, 1] for d in range(2))
            assert own > foreign + 0.5, (channel, parent, own, foreign)
    assert upper.parents.shape[1] == 0  # the top layer has none


def test_a_mirrored_image_gets_the_same_nodes_at_mirrored_places():
    maps, _ = planted(N)
    graph = explain.explanatory_graph(MODEL, ["lower", "upper"], maps, iterations=3, progress=False)
    plain = explain.infer(graph, MODEL, maps[:8], progress=False)
    mirrored = explain.infer(graph, MODEL, maps[:8, :, ::-1], progress=False)
    assert (plain.flipped != mirrored.flipped).all()
    for name in ("upper", "lower"):
        np.testing.assert_allclose(mirrored[name].scores, plain[name].scores, rtol=1e-5)
        np.testing.assert_allclose(mirrored[name].positions[..., 0], plain[name].positions[..., 0], atol=1e-4)
        np.testing.assert_allclose(mirrored[name].positions[..., 1], SIZE - 1 - plain[name].positions[..., 1],
                                   atol=1e-4)


def test_a_saved_graph_loads_equal_and_refuses_another_model(mined, tmp_path):
    graph, found, maps, _ = mined
    graph.save(tmp_path / "graph.npz")
    loaded = explain.ExplanatoryGraph.load(tmp_path / "graph.npz")
    again = explain.infer(loaded, MODEL, maps, progress=False)
    np.testing.assert_array_equal(again["lower"].positions, found["lower"].positions)
    other = nets.from_function(lambda params, x: two_layers(x * params), np.float32(2.0))
    with pytest.raises(ValueError, match="model: this explanatory graph was mined from another model"):
        explain.infer(loaded, other, maps)
