"""`explain.decision_tree`: planted clusters of decision modes, the Lasso against brute force, the merge
objective against a direct computation, a trained network's tree, saving and the errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import explain
from interp.data import SynthParts
from interp.files import CorruptFileError


def _clustered_modes(seed=0, clusters=3, per=8, width=12, noise=0.05):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, width))
    mode = np.concatenate([c + noise * rng.normal(size=(per, width)) for c in centers])
    features = np.abs(rng.normal(size=(clusters * per, width))) + 0.5
    bias = np.full(clusters * per, 0.2)
    score = (mode * features).sum(1) + bias
    split = explain.Contributions(score=score, filters=mode * features, bias=bias, features=features, mode=mode)
    return split, np.repeat(np.arange(clusters), per)


def _leaf_sets(tree):
    """Per node, the set of training images under it."""
    parent, leaf_image = np.asarray(tree.parent), np.asarray(tree.leaf_image)
    sets = [set() for _ in range(tree.num_nodes)]
    for leaf in np.flatnonzero(leaf_image >= 0):
        for node in tree.ancestors(leaf):
            sets[node].add(int(leaf_image[leaf]))
    assert (parent[1:] < np.arange(1, tree.num_nodes)).all()  # ids run top-down
    return sets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_clusters_are_recovered_before_they_merge(seed):
    split, cluster = _clustered_modes(seed)
    tree = explain.grow_tree(split, complexity=1.0)
    sets = _leaf_sets(tree)
    for k in range(3):
        members = set(np.flatnonzero(cluster == k).tolist())
        assert members in sets, f"cluster {k} is no node's image set"
    # No merge mixes clusters: the root's children are the clusters.
    assert sorted(sets[c] == set(np.flatnonzero(cluster == cluster[min(sets[c])]).tolist())
                  for c in tree.children(0)) == [True] * 3
    # Coarser modes explain less: the rationale error falls with depth to 0 at the leaves, where the
    # predicted margins all have the network's sign; the root's mode gets some signs wrong.
    found = explain.explanation_along(tree, split, tree.training_paths())
    error, agreement = np.asarray(found.rationale_error()), np.asarray(found.agreement())
    assert (np.diff(error) <= 1e-6).all() and error[-1] < 1e-5
    assert agreement[-1] == 1.0 and agreement[0] < 0.95
    # With every merge rewarded more than any cluster's cost, the clusters merge last.
    full = explain.grow_tree(split, complexity=1e6)
    full_sets = _leaf_sets(full)
    assert len(full.children(0)) == 2
    for k in range(3):
        assert set(np.flatnonzero(cluster == k).tolist()) in full_sets


def test_leaves_reproduce_the_scores_and_the_root_errs():
    split, _ = _clustered_modes(3)
    tree = explain.grow_tree(split, complexity=1.0)
    found = explain.explanation_along(tree, split, tree.training_paths())
    np.testing.assert_allclose(found.prediction[:, -1], split.score, rtol=1e-5, atol=1e-5)
    error = np.asarray(found.rationale_error())
    assert error[-1] < 1e-5 and error[0] > 0.3
    np.testing.assert_allclose(found.rationale(-1), split.filters, rtol=1e-4, atol=1e-4)
    halves = explain.PartMatrix.from_labels(np.arange(12) // 6, ["part/left", "part/right"], "part")
    np.testing.assert_allclose(found.parts(halves, 0), np.stack([found.rationale(0)[:, :6].sum(1),
                                                                 found.rationale(0)[:, 6:].sum(1)], 1), rtol=1e-5)
    # A new image of a cluster follows a path to a leaf of its own cluster.
    fresh, cluster = _clustered_modes(3)
    fresh_mode = np.asarray(fresh.mode) + 0.01
    fresh = explain.Contributions(fresh.score, fresh.filters, fresh.bias, fresh.features, fresh_mode)
    path = np.asarray(explain.follow(tree, fresh).path)
    leaf_image = np.asarray(tree.leaf_image)
    assert (cluster[leaf_image[path[:, -1]]] == cluster).all()


def test_select_filters_is_the_brute_force_minimum():
    rng = np.random.default_rng(4)
    direction = rng.normal(size=(5, 7))
    mode = direction[:, None] + 0.5 * rng.normal(size=(5, 9, 7))
    features = np.abs(rng.normal(size=(5, 9, 7)))
    penalty = rng.uniform(0, 2, size=5)
    alpha = explain.select_filters(direction, (features ** 2).sum(1), (mode * features ** 2).sum(1), penalty)
    grid = np.linspace(0, 1, 20001)
    for i in range(5):
        for d in range(7):
            residual = grid[:, None] * direction[i, d] * features[i, :, d] - mode[i, :, d] * features[i, :, d]
            objective = 0.5 * (residual ** 2).sum(1) + penalty[i] * grid
            assert abs(alpha[i, d] - grid[objective.argmin()]) <= 1e-4
    assert ((alpha == 0) | (alpha == 1)).any() and ((alpha > 0) & (alpha < 1)).any()


def test_first_merge_is_the_best_pair_by_direct_residuals():
    split, _ = _clustered_modes(5, clusters=2, per=4, width=5, noise=0.3)
    lasso, complexity = 0.05, 1.0
    tree = explain.grow_tree(split, complexity=complexity, lasso=lasso)
    g, x = np.asarray(split.mode), np.asarray(split.features)
    norm = np.linalg.norm(g, axis=1)
    unit, bias = g / norm[:, None], np.asarray(split.bias) / norm
    gamma = 1 / np.abs(np.asarray(split.score) / norm).mean()

    def gain(images):
        direction = unit[images].sum(0) / np.linalg.norm(unit[images].sum(0))
        xs = gamma * x[images]
        alpha = explain.select_filters(direction, (xs ** 2).sum(0), (unit[images] * xs ** 2).sum(0),
                                       lasso * np.sqrt(len(images)))
        rationale = ((alpha * direction - unit[images]) * xs) ** 2
        bias_error = ((gamma * bias[images] - gamma * bias[images].mean()) ** 2).sum()
        return complexity - 0.5 * (rationale.sum() + bias_error)

    gains = {(i, j): gain([i, j]) for i in range(8) for j in range(i + 1, 8)}
    best = max(gains, key=gains.get)
    first = int(np.nanargmax(np.where(np.asarray(tree.size) == 2, np.asarray(tree.gain), -np.inf)))
    # The first merge has the largest gain among two-image nodes (later merges of pairs score lower or equal).
    sets = _leaf_sets(tree)
    assert sets[first] == set(best)
    assert abs(float(tree.gain[first]) - gains[best]) < 1e-4


def test_a_trained_network_tree_explains_its_training_images_exactly(trained_small_cnn, tmp_path):
    model = trained_small_cnn[400][0]
    data = SynthParts(seed=1, image_size=64, num_classes=6)
    batch = data.batch(jnp.arange(96))
    target = 2
    tree = explain.decision_tree(model, "relu3", batch["image"], target, labels=batch["label"], progress=False)
    positives = np.flatnonzero(np.asarray(batch["label"]) == target)
    assert (np.asarray(tree.leaf_image) >= 0).sum() == len(positives)
    exact = explain.contributions(model, "relu3", batch["image"][positives], target, scale=tree.scale,
                                  score="margin")
    found = explain.explanation_along(tree, exact, tree.training_paths())
    np.testing.assert_allclose(found.prediction[:, -1], exact.score, rtol=1e-4, atol=1e-4)
    assert float(found.agreement()[-1]) == 1.0
    error = np.asarray(found.rationale_error())
    assert error[-1] < 1e-4 and error[0] > 0.05
    new = explain.explain_predictions(tree, model, batch["image"][:8])
    assert new.path.shape[0] == 8 and (np.asarray(new.path)[:, 0] == 0).all()

    tree.save(tmp_path / "tree.npz")
    loaded = explain.DecisionTree.load(tmp_path / "tree.npz")
    assert loaded.layer == "relu3" and loaded.target == target and loaded.fingerprint == tree.fingerprint
    for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(a, b)
    other = trained_small_cnn[700][0]
    with pytest.raises(ValueError, match="model: this decision tree was learned from another model"):
        explain.explain_predictions(loaded, other, batch["image"][:4])
    with pytest.raises(ValueError, match="labels: no image is labelled 9"):
        explain.decision_tree(model, "relu3", batch["image"], 9, labels=batch["label"])
    with pytest.raises(ValueError, match="layer: 'gap' is not a spatial layer"):
        explain.decision_tree(model, "gap", batch["image"], target, labels=batch["label"])
    raw = (tmp_path / "tree.npz").read_bytes()
    (tmp_path / "bad.npz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(CorruptFileError):
        explain.DecisionTree.load(tmp_path / "bad.npz")


def test_bad_modes_and_weights_are_named():
    split, _ = _clustered_modes()
    with pytest.raises(ValueError, match="complexity: expected a finite number >= 0"):
        explain.grow_tree(split, complexity=-1.0)
    with pytest.raises(ValueError, match="lasso: expected a finite number >= 0"):
        explain.grow_tree(split, lasso=float("nan"))
    zero = explain.Contributions(split.score, split.filters, split.bias, split.features,
                                 np.asarray(split.mode) * (np.arange(24) != 3)[:, None])
    with pytest.raises(ValueError, match=r"modes: image\(s\) \[3\] have a zero decision mode"):
        explain.grow_tree(zero)


def test_a_tree_file_of_another_kind_is_refused(tmp_path):
    from interp import files

    files.save_arrays(tmp_path / "other.npz", {"meta": np.array("{}"), "x": np.zeros(3)})
    with pytest.raises(ValueError, match="is not a decision tree"):
        explain.DecisionTree.load(tmp_path / "other.npz")

