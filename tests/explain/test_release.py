"""One E-step, one M-step and one choice of parents equal the NumPy transcription of the release.

`release_reference.py` transcribes doE.m, getProb_local_mex.cpp,
getOtherProb.cpp, the per-image body and updateModel of
learn_explanatoryGraph.m and getCurDistribution.m loop by loop, in the
release's layout (column-major [P, C] nodes, 1-based places, candidates
columns-outer). The JAX code computes every node and image at once in its own
layout; these tests convert between the two and compare, on random inputs
with no exact ties (continuous places and maps), in float32 against float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp.explain import _em
from tests.explain import release_reference as release

XH, P, C, K = 16, 4, 3, 6
SETTINGS = dict(position_cand_num=K, map_delta_rate=0.025, max_range=0.3, deform_ratio=3.0)
CONFIG = _em.LayerConfig(num_patterns=P, num_candidates=K, max_half_range=int(release.matlab_round(0.3 * XH / 2)),
                         half_range_cap=0.3 * XH / 2, deform_ratio=3.0, map_delta=0.025 * XH, valid_tau=0.1,
                         map_shape=(XH, XH))


def _inputs(seed):
    rng = np.random.default_rng(seed)
    # Dense, continuous maps: on a sparse map a window can be mirror-symmetric, and then two candidates tie
    # exactly and each implementation's rounding picks one.
    x = rng.gamma(1.0, 1.0, (XH, XH, C)) - 0.2
    coord = rng.uniform(1.5, XH - 0.5, (2, P, C))  # 1-based, continuous: no exact ties between candidates
    deform = rng.choice([0.1, 0.4, 0.9], (P, C)) + rng.uniform(0, 0.05, (P, C))  # half-ranges 0, 1 and 2
    deform[:3, 0] = [0.1, 0.4, 0.9]
    mu = rng.normal(0, 0.7, (2, P * C))
    delta = rng.uniform(0.8, 2.5, P * C)
    lam = rng.uniform(0.5, 1.5, P * C)
    return x, coord, deform, mu, delta, lam


def _to_nodes(column_major, *trailing):
    """Release [..., P*C] (p fastest) to JAX [C, P, ...]."""
    a = np.asarray(column_major)
    lead = a.shape[:-1]
    return np.moveaxis(a.reshape(*lead, C, P), (len(lead), len(lead) + 1), (0, 1))


def _same(node_major, column_major, **tolerance):
    """JAX [C, P] values equal the release's [P*C] column."""
    np.testing.assert_allclose(np.asarray(node_major).reshape(-1), _to_nodes(column_major).reshape(-1), **tolerance)


def _candidates(node_major):
    """JAX [C, P, K(rows), K(cols)] to the release's [K*K, P*C], columns outer."""
    a = np.asarray(node_major, np.float64)
    return np.swapaxes(a, -1, -2).reshape(C * P, K * K).T


def _jax_evidence(x, coord, deform, mu, delta, lam):
    centres = _to_nodes(coord.reshape(2, P * C, order="F"))  # [C, P, 2]
    centres = centres - 1 + _to_nodes(mu)
    half_range = _em.half_ranges(jnp.asarray(deform.T, jnp.float32), CONFIG)
    delta_nodes = jnp.asarray(_to_nodes(delta), jnp.float32)
    e = _em.evidence(jnp.asarray(x, jnp.float32), jnp.asarray(centres, jnp.float32), delta_nodes,
                     jnp.asarray(_to_nodes(lam), jnp.float32), half_range, CONFIG)
    return e, delta_nodes, half_range


@pytest.mark.parametrize("seed", [0, 1])
def test_e_step_equals_the_release(seed):
    x, coord, deform, mu, delta, lam = _inputs(seed)
    ref = release.e_step(x, coord, deform, mu, delta, lam, release_indexing=False, **SETTINGS)
    e, _, half_range = _jax_evidence(x, coord, deform, mu, delta, lam)
    assert set(np.unique(ref["half_range"])) == {0.0, 1.0, 2.0}  # every window size is exercised
    np.testing.assert_array_equal(np.asarray(half_range).reshape(-1), _to_nodes(ref["half_range"]).reshape(-1))
    np.testing.assert_allclose(_candidates(e.prob), ref["prob"], rtol=2e-5, atol=1e-9)
    np.testing.assert_allclose(_candidates(e.prior), ref["prior"], rtol=2e-5, atol=1e-6)
    places = np.asarray(e.centres)[..., None, None, :] + np.stack(np.broadcast_arrays(
        np.asarray(e.offsets)[..., :, None], np.asarray(e.offsets)[..., None, :]), axis=-1)
    for axis in range(2):
        np.testing.assert_allclose(_candidates(places[..., axis]) + 1, ref["pos"][axis], atol=2e-5)


def test_the_release_indexing_quirk_reads_channel_one_everywhere():
    """The mex reads delta and the half-range by pattern only; with every channel alike the two readings agree."""
    x, coord, deform, mu, delta, lam = _inputs(3)
    deform[:] = deform[:, :1]
    delta = np.tile(delta[:P], C)
    quirk = release.e_step(x, coord, deform, mu, delta, lam, release_indexing=True, **SETTINGS)
    e, _, _ = _jax_evidence(x, coord, deform, mu, delta, lam)
    np.testing.assert_allclose(_candidates(e.prior), quirk["prior"], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(_candidates(e.prob), quirk["prob"], rtol=2e-5, atol=1e-9)


def test_image_update_and_m_step_equal_the_release():
    images = [_inputs(10 + i) for i in range(3)]
    _, coord, deform, _, _, _ = images[0]
    ref_totals, jax_totals = [], []
    for x, _, _, mu, delta, lam in images:
        ref = release.e_step(x, coord, deform, mu, delta, lam, release_indexing=False, **SETTINGS)
        update = release.image_update(ref["prob"], ref["prior"], ref["log_der"], ref["pos"], P, C)
        ref_totals.append(update)
        e, delta_nodes, _ = _jax_evidence(x, coord, deform, mu, delta, lam)
        stats = _em.image_stats(e, delta_nodes, CONFIG.valid_tau)
        jax_totals.append(stats)
        _same(stats.norm_prob, update["norm_prob_sum"], rtol=1e-4)
        _same(stats.mass, update["prob_sum"], rtol=2e-5)
        _same(stats.spread, update["pos_var"], rtol=2e-5)
        _same(stats.best, update["inferred"], rtol=2e-5)
        for axis in range(2):
            _same(stats.shift[..., axis], update["log_der"][axis], rtol=1e-4, atol=1e-7)
            _same(stats.position[..., axis] + 1, update["position"][axis], atol=2e-5)

    stack = lambda key: np.stack([u[key] for u in ref_totals], axis=-1)  # noqa: E731
    ref_first = release.e_step(*images[0][:1], coord, deform, *images[0][3:], release_indexing=False, **SETTINGS)
    min_delta, max_rate = 0.9, 1.0 / np.sqrt(P / XH**2) / XH
    ref = release.m_step(stack("prob_sum"), stack("norm_prob_sum"), stack("log_der"), stack("pos_var"),
                         stack("position"), coord, ref_first["pos_cand"], xh=XH, min_delta=min_delta,
                         max_delta_rate=max_rate, min_delta_rate=max_rate / 10)
    totals = jax.tree.map(lambda *a: jnp.sum(jnp.stack(a), axis=0), *jax_totals)
    half_range = _em.half_ranges(jnp.asarray(deform.T, jnp.float32), CONFIG)
    new = _em.m_step(jnp.asarray(_to_nodes(coord.reshape(2, P * C, order="F"))) - 1, jnp.asarray(deform.T),
                     half_range, totals, step=min_delta**2, min_deform=max_rate * XH / 10,
                     max_deform=max_rate * XH, num_candidates=K)
    np.testing.assert_allclose(np.asarray(new.coord) + 1, _to_nodes(ref["coord"].reshape(2, P * C, order="F")),
                               rtol=1e-5)
    np.testing.assert_allclose(np.asarray(new.deform), np.asarray(ref["deform"]).reshape(P, C, order="F").T,
                               rtol=1e-5)


def test_flip_choice_equals_the_release():
    x, coord, deform, mu, delta, lam = _inputs(20)
    mirrored = x[:, ::-1]
    plain = release.e_step(x, coord, deform, mu, delta, lam, release_indexing=False, **SETTINGS)
    other = release.e_step(mirrored, coord, deform, mu, delta, lam, release_indexing=False, **SETTINGS)
    chosen = release.flip_choice(plain["prob"], plain["prior"], other["prob"], other["prior"])
    e_plain = _jax_evidence(x, coord, deform, mu, delta, lam)[0]
    e_other = _jax_evidence(mirrored, coord, deform, mu, delta, lam)[0]
    ours = float(_em.flip_evidence(e_plain)) < float(_em.flip_evidence(e_other))
    assert ours == chosen
    assert abs(float(_em.flip_evidence(e_plain)) - np.sum(np.log(plain["prob"]) * plain["prior"])) < 1e-3 * abs(
        np.sum(np.log(plain["prob"]) * plain["prior"]))


def test_parents_equal_the_release():
    """getCurDistribution on two layers of one geometry (where the release's unit quirks vanish)."""
    rng = np.random.default_rng(7)
    n, upper_nodes, top_n, top_m = 12, 40, 3, 10
    shift = rng.normal(0, 1.5, (n, 2))
    upper = rng.uniform(4, XH - 4, (2, upper_nodes, 1)) + shift.T[:, None, :] * rng.uniform(0, 1, (1, upper_nodes, 1))
    upper = upper + rng.normal(0, 0.3, upper.shape)
    lower = rng.uniform(4, XH - 4, (2, P * C, 1)) + shift.T[:, None, :] + rng.normal(0, 0.3, (2, P * C, n))
    upper_deform = rng.uniform(0.5, 2.0, upper_nodes)
    upper_prob = rng.uniform(0.1, 2.0, (upper_nodes, n))
    inferred = rng.uniform(0.1, 1.0, (P * C, n))
    ref = release.parents(upper, upper_deform, upper_prob, lower, inferred, xh=XH, num_patterns=P, num_channels=C,
                          top_n=top_n, top_m=top_m, upper_stride=4.0, upper_center=2.5, stride=4.0, center=2.5)

    upper_positions = np.moveaxis(upper - 1, 0, -1).transpose(1, 0, 2)  # [N, U, 2] 0-based
    lower_positions = np.moveaxis(lower - 1, 0, -1).transpose(1, 0, 2)
    candidates = _em.parent_candidates(upper_positions, upper_prob.T, (XH, XH), top_m)
    upper_dev = upper_positions - upper_positions.mean(0)
    lower_dev = lower_positions - lower_positions.mean(0)
    chosen = _em.choose_parents(jnp.asarray(lower_dev * 4.0), jnp.asarray(upper_dev[:, candidates] * 4.0),
                                jnp.asarray(inferred.T), top_n)
    parents = candidates[np.asarray(chosen)]  # [L, T]
    np.testing.assert_array_equal(parents.T, ref["parents"])
    terms = _em.parent_terms(jnp.asarray(parents), jnp.asarray(upper_dev, jnp.float32),
                             jnp.asarray(upper_deform, jnp.float32))
    np.testing.assert_allclose(np.moveaxis(np.asarray(terms.mu), -1, 0).transpose(0, 2, 1), ref["cur_mu"],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(terms.delta).T, ref["cur_delta"], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(terms.lam).T, ref["cur_lambda"], rtol=1e-4)
