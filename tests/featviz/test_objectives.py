"""Objectives: the algebra, the shorthand, and reference values of each objective."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interp import featviz as fv


def random_acts(seed: int, batch: int = 3):
    keys = jax.random.split(jax.random.key(seed), 4)
    return {
        "relu3": jax.random.normal(keys[0], (batch, 5, 6, 8)),
        "relu4": jax.nn.relu(jax.random.normal(keys[1], (batch, 3, 3, 4))),
        "logits": jax.random.normal(keys[2], (batch, 6)),
        fv.INPUT: jax.random.uniform(keys[3], (batch, 9, 7, 3)),
    }


@given(seed=st.integers(0, 2**16), weight=st.floats(-5, 5, allow_nan=False))
def test_algebra_is_linear_in_the_scores(seed, weight):
    acts = random_acts(seed)
    a, b, c = fv.channel("relu3", 2), fv.neuron("relu4", 1, (0, 2)), fv.class_logit(4)
    close = lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    close((a + 2 * b)(acts), a(acts) + 2 * b(acts))
    close((a - b)(acts), a(acts) - b(acts))
    close((-a)(acts), -a(acts))
    close((a * weight)(acts), weight * a(acts))
    close((a / 4)(acts), a(acts) / 4)
    close(sum([a, b, c])(acts), a(acts) + b(acts) + c(acts))
    close(fv.objective_sum([a, "relu3:5"])(acts), a(acts) + fv.channel("relu3", 5)(acts))
    close(("relu3:5" + 2 * b)(acts), fv.channel("relu3", 5)(acts) + 2 * b(acts))
    close((b - "relu3:5")(acts), b(acts) - fv.channel("relu3", 5)(acts))
    close(("relu3:5" - b)(acts), fv.channel("relu3", 5)(acts) - b(acts))


def test_combined_objective_names_every_layer_once():
    obj = fv.channel("relu3", 1) + fv.channel("relu3", 2) - 0.1 * fv.total_variation() + fv.class_logit(0)
    assert obj.layers == ("relu3", fv.INPUT, "logits")


def test_reference_values():
    acts = random_acts(0)
    a3, logits, x = np.asarray(acts["relu3"]), np.asarray(acts["logits"]), np.asarray(acts[fv.INPUT])
    cases = {
        "neuron": (fv.neuron("relu3", 3, (1, 4)), a3[:, 1, 4, 3]),
        "neuron at the center": (fv.neuron("relu3", 3), a3[:, 2, 3, 3]),
        "channel": (fv.channel("relu3", 3), a3[..., 3].mean((1, 2))),
        "dense channel": (fv.as_objective("logits:2"), logits[:, 2]),
        "deepdream": (fv.deepdream("relu3"), (a3**2).mean((1, 2, 3))),
        "logit": (fv.class_logit(5), logits[:, 5]),
        "probability": (fv.class_probability(5), np.exp(logits[:, 5]) / np.exp(logits).sum(1)),
        "l1": (fv.l1(center=0.5), np.abs(x - 0.5).sum((1, 2, 3))),
        "l2": (fv.l2(), (x**2).sum((1, 2, 3))),
        "tv": (
            fv.total_variation(),
            np.abs(np.diff(x, axis=1)).sum((1, 2, 3)) + np.abs(np.diff(x, axis=2)).sum((1, 2, 3)),
        ),
    }
    for name, (objective, expected) in cases.items():
        np.testing.assert_allclose(objective(acts), expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_direction_and_cosine_variant():
    acts = random_acts(1)
    a = np.asarray(acts["relu3"])
    v = np.random.default_rng(0).normal(size=8).astype(np.float32)
    dots = a @ v
    cosines = dots / (np.linalg.norm(a, axis=-1) * np.linalg.norm(v))
    np.testing.assert_allclose(fv.direction("relu3", v)(acts), dots.mean((1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fv.direction("relu3", v, position=(2, 1))(acts), dots[:, 2, 1], rtol=1e-5)
    expected = (dots * np.maximum(cosines, 1e-6)).mean((1, 2))
    np.testing.assert_allclose(fv.direction("relu3", v, cosine_power=1)(acts), expected, rtol=1e-4, atol=1e-6)


def test_activation_match_is_maximal_at_the_target_for_cosine():
    acts = random_acts(2)
    target = acts["relu3"][1]
    scores = fv.activation_match("relu3", target, mode="cosine")(acts)
    np.testing.assert_allclose(scores[1], 1.0, rtol=1e-5)
    assert np.all(np.asarray(scores)[[0, 2]] < 0.5)
    dots = fv.activation_match("relu3", target)(acts)
    np.testing.assert_allclose(dots, np.asarray(acts["relu3"]).reshape(3, -1) @ np.asarray(target).ravel(), rtol=1e-5)


def test_diversity_is_minus_one_for_copies_and_zero_for_disjoint_channels():
    same = jnp.ones((3, 4, 4, 5))
    np.testing.assert_allclose(fv.diversity("a")({"a": same}), -np.ones(3), rtol=1e-5)
    disjoint = jnp.stack([jnp.zeros((4, 4, 3)).at[..., i].set(1.0) for i in range(3)])
    np.testing.assert_allclose(fv.diversity("a")({"a": disjoint}), np.zeros(3), atol=1e-6)


def test_alignment_matches_the_hand_formula():
    a = np.random.default_rng(1).normal(size=(3, 2, 2, 2)).astype(np.float32)
    d = lambda i, j: np.square(a[i] - a[j]).sum()
    expected = -np.array([d(0, 1) / 2 + d(0, 2) / 4, d(0, 1) / 2 + d(1, 2) / 2, d(0, 2) / 4 + d(1, 2) / 2]) / 2
    np.testing.assert_allclose(fv.alignment("a")({"a": jnp.asarray(a)}), expected, rtol=1e-5)


def test_blur_penalty_gradient_is_the_high_pass_of_the_image():
    x = jax.random.uniform(jax.random.key(3), (1, 6, 6, 3))
    grad = jax.grad(lambda x: fv.blur_penalty()({fv.INPUT: x}).sum())(x)
    padded = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = sum(padded[:, i : i + 6, j : j + 6] for i in range(3) for j in range(3)) / 9
    np.testing.assert_allclose(grad, np.asarray(x) - blurred, rtol=1e-5, atol=1e-6)


def test_traced_channel_index_under_vmap():
    acts = random_acts(4)
    per_channel = jax.vmap(lambda c: fv.channel("relu3", c)(acts))(jnp.arange(8))
    np.testing.assert_allclose(per_channel, np.asarray(acts["relu3"]).mean((1, 2)).T, rtol=1e-5)


def test_bad_objectives_raise_named_errors():
    acts = random_acts(5)
    with pytest.raises(ValueError, match="objective: expected 'layer:channel'"):
        fv.as_objective("relu3")
    with pytest.raises(ValueError, match="needs layer 'conv9'"):
        fv.channel("conv9", 0)(acts)
    with pytest.raises(ValueError, match="per-example scores"):
        fv.Objective(lambda acts: acts["relu3"].sum(), ("relu3",))(acts)
    with pytest.raises(ValueError, match="needs a batch of at least 2"):
        fv.diversity("relu3")({"relu3": acts["relu3"][:1]})
    with pytest.raises(ValueError, match="mode"):
        fv.activation_match("relu3", acts["relu3"][0], mode="l2")
    with pytest.raises(TypeError):
        fv.channel("relu3", 0) + 1.0
