"""SynthParts sampling: every random choice behind one example, from one PRNG key.

All positions and sizes are in normalized image coordinates (x, y in [0, 1]) or
in the object frame of `_synth_templates`, never in pixels, so the same key
gives the same scene at every resolution (see `_synth_render`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from interp.data import _synth_templates as T

NUM_DISTRACTORS = 8
TINT_RGB = (1.0, 0.1, 0.1)
TINT_RATE = 0.2  # P(red_tint) for an example the bias knob does not decide
SCALE_RANGE = (0.24, 0.42)  # image units per object-frame unit: the object spans ~48-84% of the side
MAX_ANGLE = math.radians(15.0)
PLAIN_RATE = 0.4  # P(a part is untextured)


class Pose(NamedTuple):
    """Maps the object frame onto the image (all scalars or [2] float32).

    Attributes:
      center: [2] (x, y) image position of the object-frame origin.
      scale: image units per object-frame unit.
      stretch: [2] extra (x, y) scale factors, so aspect ratios vary a little.
      angle: rotation in radians (clockwise on screen).
      flip: bool, mirror the object horizontally (it faces left).
    """

    center: jax.Array
    scale: jax.Array
    stretch: jax.Array
    angle: jax.Array
    flip: jax.Array


class Scene(NamedTuple):
    """Every random choice behind one example (shapes per field, no batch axis).

    Attributes:
      label: int32 [] class index.
      pose: the object's `Pose`.
      size_jitter: float32 [S, 2] per-primitive multiplicative size noise.
      colors: int32 [P + 1] color index per global part id (into `T.COLOR_NAMES`).
      textures: int32 [P + 1] texture index per global part id (into `T.TEXTURE_NAMES`).
      scene: int32 [] background type (into `T.SCENE_NAMES`).
      bg_colors: float32 [2, 3] the two background colors.
      bg_angle: float32 [] direction of the gradient or stripes.
      bg_period: float32 [] stripe period, image units.
      bg_field: float32 [6, 6, 3] coarse color field of the "noise" background.
      distractors: float32 [D, 5] (cx, cy, half_w, half_h, angle) in image units.
      distractor_kind: int32 [D] shape kind.
      distractor_color: int32 [D] color index, -1 for an inactive slot.
      tint: bool [] whether the image gets a red tint.
    """

    label: jax.Array
    pose: Pose
    size_jitter: jax.Array
    colors: jax.Array
    textures: jax.Array
    scene: jax.Array
    bg_colors: jax.Array
    bg_angle: jax.Array
    bg_period: jax.Array
    bg_field: jax.Array
    distractors: jax.Array
    distractor_kind: jax.Array
    distractor_color: jax.Array
    tint: jax.Array


def biased_bernoulli(key: jax.Array, indicator: jax.Array, strength: float | jax.Array, rate: float) -> jax.Array:
    """An attribute that copies `indicator` with probability `strength`.

    Otherwise it is an independent Bernoulli(`rate`) draw, so
    P(a | indicator) - P(a | not indicator) = `strength` exactly.
    """
    k_copy, k_draw = jax.random.split(key)
    copy = jax.random.bernoulli(k_copy, strength)
    return jnp.where(copy, indicator, jax.random.bernoulli(k_draw, rate))


def _sample_pose(key: jax.Array) -> Pose:
    k_scale, k_pos, k_str, k_ang, k_flip = jax.random.split(key, 5)
    scale = jax.random.uniform(k_scale, (), minval=SCALE_RANGE[0], maxval=SCALE_RANGE[1])
    # Keep the object's box (nearly) inside the image: a slight crop is allowed.
    margin = 0.85 * scale
    center = jax.random.uniform(k_pos, (2,), minval=margin, maxval=1.0 - margin)
    stretch = jax.random.uniform(k_str, (2,), minval=0.9, maxval=1.1)
    angle = jax.random.uniform(k_ang, (), minval=-MAX_ANGLE, maxval=MAX_ANGLE)
    return Pose(center, scale, stretch, angle, jax.random.bernoulli(k_flip))


def _sample_scene_type(key: jax.Array, striped: jax.Array) -> jax.Array:
    """Striped background iff `striped`; otherwise uniform over the other types."""
    other = jax.random.randint(key, (), 0, len(T.SCENE_NAMES) - 1)
    other = other + (other >= T.STRIPED_SCENE).astype(other.dtype)
    return jnp.where(striped, T.STRIPED_SCENE, other)


def _sample_distractors(key: jax.Array, scene: jax.Array, clutter: float | jax.Array):
    k_on, k_kind, k_pos, k_half, k_ang, k_col = jax.random.split(key, 6)
    d = NUM_DISTRACTORS
    # The "shapes" background doubles the clutter (capped at every slot on).
    p_on = jnp.where(scene == T.SHAPES_SCENE, jnp.minimum(1.0, 0.25 + clutter), 0.5 * clutter)
    active = jax.random.uniform(k_on, (d,)) < p_on
    geom = jnp.concatenate(
        [
            jax.random.uniform(k_pos, (d, 2)),
            jax.random.uniform(k_half, (d, 2), minval=0.03, maxval=0.09),
            jax.random.uniform(k_ang, (d, 1), minval=-math.pi, maxval=math.pi),
        ],
        axis=1,
    )
    kind = jax.random.randint(k_kind, (d,), 0, 4)
    color = jnp.where(active, jax.random.randint(k_col, (d,), 0, len(T.COLOR_NAMES)), -1)
    return geom, kind, color


def sample_scene(
    key: jax.Array,
    num_classes: int,
    clutter: float | jax.Array,
    bias_class: int | jax.Array,
    tint_strength: float | jax.Array,
    stripe_strength: float | jax.Array,
) -> Scene:
    """Draws every random choice of one example from `key`.

    Args:
      key: PRNG key of the example, `fold_in(key(seed), i)`.
      num_classes: the label is uniform over the first `num_classes` templates.
      clutter: in [0, 1], scales the expected number of distractor shapes.
      bias_class: the class the two bias attributes may co-occur with.
      tint_strength: `biased_bernoulli` strength of "red_tint".
      stripe_strength: `biased_bernoulli` strength of "striped_background".
    """
    ks = jax.random.split(key, 12)
    s, n_col = T.MAX_SLOTS, len(T.COLOR_NAMES)
    # Color and texture are per part, not per primitive: a tree's foliage blobs match.
    p = len(T.PART_NAMES) + 1
    label = jax.random.randint(ks[0], (), 0, num_classes)
    is_bias = label == bias_class
    tint = biased_bernoulli(ks[1], is_bias, tint_strength, TINT_RATE)
    striped = biased_bernoulli(ks[2], is_bias, stripe_strength, 1.0 / len(T.SCENE_NAMES))
    scene = _sample_scene_type(ks[3], striped)
    textured = jax.random.uniform(ks[4], (p,)) >= PLAIN_RATE
    textures = jnp.where(textured, jax.random.randint(ks[5], (p,), 1, len(T.TEXTURE_NAMES)), 0)
    # Backgrounds are muted (pulled toward gray) so the saturated parts stand out.
    bg_colors = 0.5 + 0.6 * (jax.random.uniform(ks[6], (2, 3)) - 0.5)
    geom, kind, color = _sample_distractors(ks[7], scene, clutter)
    return Scene(
        label=label,
        pose=_sample_pose(ks[8]),
        size_jitter=jax.random.uniform(ks[9], (s, 2), minval=0.92, maxval=1.08),
        colors=jax.random.randint(ks[10], (p,), 0, n_col),
        textures=textures,
        scene=scene,
        bg_colors=bg_colors,
        bg_angle=jax.random.uniform(ks[11], (), minval=0.0, maxval=math.pi),
        bg_period=0.06 + 0.08 * jax.random.uniform(jax.random.fold_in(ks[11], 1), ()),
        bg_field=jax.random.uniform(jax.random.fold_in(ks[6], 1), (6, 6, 3)),
        distractors=geom,
        distractor_kind=kind,
        distractor_color=color,
        tint=tint,
    )
