"""SynthParts rendering: a `Scene` to an image with its ground-truth maps, in pure JAX.

Shapes are implicit functions evaluated on the pixel grid in normalized image
coordinates (pixel centers at (i + 0.5) / size), so rendering is resolution
independent. Occlusion is painter's order: each pixel belongs to the last
primitive that covers it. Masks are hard (no anti-aliasing), so every object
pixel belongs to exactly one part.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from interp.data import _synth_templates as T
from interp.data._synth_sample import SCALE_RANGE, TINT_RGB, Pose, Scene

# Texture scales in object-frame units (the object spans about 2 units), so a
# texture keeps its size relative to the object at any resolution.
STRIPE_PERIOD = 0.3
DOT_SPACING, DOT_RADIUS = 0.3, 0.1
CHECKER_CELL = 0.2
ATTRIBUTE_NAMES = ("red_tint", "striped_background", "facing_left", "large", "textured")


def pixel_grid(size: int) -> tuple[jax.Array, jax.Array]:
    """Pixel-center coordinates (x, y), each float32 [size, size] in (0, 1)."""
    t = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size
    y, x = jnp.meshgrid(t, t, indexing="ij")
    return x, y


def to_object_frame(x: jax.Array, y: jax.Array, pose: Pose) -> tuple[jax.Array, jax.Array]:
    """Image coordinates [...] to object-frame coordinates [...] under `pose`."""
    dx, dy = x - pose.center[0], y - pose.center[1]
    c, s = jnp.cos(pose.angle), jnp.sin(pose.angle)
    qx = (c * dx + s * dy) / (pose.scale * pose.stretch[0])
    qy = (c * dy - s * dx) / (pose.scale * pose.stretch[1])
    return jnp.where(pose.flip, -qx, qx), qy


def to_image_frame(q: jax.Array, pose: Pose) -> jax.Array:
    """Object-frame points [N, 2] (x, y) to image coordinates [N, 2]; inverts `to_object_frame`."""
    qx = jnp.where(pose.flip, -q[:, 0], q[:, 0]) * pose.scale * pose.stretch[0]
    qy = q[:, 1] * pose.scale * pose.stretch[1]
    c, s = jnp.cos(pose.angle), jnp.sin(pose.angle)
    return jnp.stack([c * qx - s * qy + pose.center[0], s * qx + c * qy + pose.center[1]], axis=-1)


def inside_shape(kind: jax.Array, u: jax.Array, v: jax.Array) -> jax.Array:
    """Whether local points (u, v) lie in a unit shape of `kind` (all [..] broadcast).

    Each shape has half-extents 1 and contains the origin (the primitive's
    center): ellipse u^2 + v^2 <= 1, rectangle max(|u|, |v|) <= 1, triangle
    with apex (0, -1) and base v = 1, rounded square u^4 + v^4 <= 1.
    """
    au = jnp.abs(u)
    value = jnp.where(
        kind == T.ELLIPSE,
        u * u + v * v,
        jnp.where(
            kind == T.RECT,
            jnp.maximum(au, jnp.abs(v)),
            jnp.where(kind == T.TRIANGLE, jnp.maximum(v, 2.0 * au - v), (u * u) ** 2 + (v * v) ** 2),
        ),
    )
    return value <= 1.0


def paint(x: jax.Array, y: jax.Array, geom: jax.Array, kind: jax.Array, active: jax.Array) -> jax.Array:
    """Painter's-order index of the primitive on top at every point.

    Args:
      x, y: float32 [H, W] points, in the frame the primitives live in.
      geom: float32 [S, 5] (cx, cy, half_w, half_h, angle) per primitive.
      kind: int32 [S] shape kinds.
      active: bool [S] primitives to draw.

    Returns:
      int32 [H, W]: 1 + index of the last active primitive covering the point, 0 if none.
    """
    cx, cy, hw, hh, ang = (geom[:, i, None, None] for i in range(5))
    dx, dy = x[None] - cx, y[None] - cy
    c, s = jnp.cos(ang), jnp.sin(ang)
    u, v = (c * dx + s * dy) / hw, (c * dy - s * dx) / hh
    hit = inside_shape(kind[:, None, None], u, v) & active[:, None, None]
    order = jnp.arange(1, geom.shape[0] + 1, dtype=jnp.int32)[:, None, None]
    return jnp.max(jnp.where(hit, order, 0), axis=0)


def texture_patterns(qx: jax.Array, qy: jax.Array) -> jax.Array:
    """Binary patterns bool [4, H, W] in `T.TEXTURE_NAMES` order, in the object frame."""
    stripes = jnp.sin((math.pi / STRIPE_PERIOD) * (qx + qy)) > 0.0
    du = qx / DOT_SPACING - jnp.round(qx / DOT_SPACING)
    dv = qy / DOT_SPACING - jnp.round(qy / DOT_SPACING)
    dots = (du * du + dv * dv) * DOT_SPACING**2 <= DOT_RADIUS**2
    cells = jnp.floor(qx / CHECKER_CELL) + jnp.floor(qy / CHECKER_CELL)
    checker = jnp.mod(cells, 2.0) > 0.5
    return jnp.stack([jnp.zeros_like(stripes), stripes, dots, checker])


def shade(rgb: jax.Array) -> jax.Array:
    """The second color of a texture: darker for light colors, lighter for dark ones."""
    luma = rgb @ jnp.array([0.3, 0.59, 0.11], jnp.float32)
    return jnp.where((luma > 0.3)[..., None], 0.45 * rgb, 0.55 + 0.45 * rgb)


def background(x: jax.Array, y: jax.Array, sc: Scene) -> jax.Array:
    """Background float32 [H, W, 3] of type `sc.scene`, distractors not included."""
    c0, c1 = sc.bg_colors[0, None, None], sc.bg_colors[1, None, None]  # [1, 1, 3]
    along = jnp.cos(sc.bg_angle) * (x - 0.5) + jnp.sin(sc.bg_angle) * (y - 0.5)
    ramp = jnp.clip(along + 0.5, 0.0, 1.0)[..., None]
    stripes = (jnp.sin(2.0 * math.pi * along / sc.bg_period) > 0.0)[..., None]
    field = jax.image.resize(sc.bg_field, (*x.shape, 3), "linear")
    options = jnp.stack(
        [
            jnp.broadcast_to(c0, (*x.shape, 3)),  # plain
            c0 + ramp * (c1 - c0),  # gradient
            0.5 * c0 + 0.5 * field,  # noise: a smooth color field
            jnp.where(stripes, c0, c1),  # striped
            jnp.broadcast_to(c0, (*x.shape, 3)),  # shapes: plain + extra distractors
        ]
    )
    return options[sc.scene]


def _with_none(values: jax.Array) -> jax.Array:
    """Prepends -1 so that painter index 0 (nothing) looks up -1."""
    return jnp.concatenate([jnp.full((1,), -1, values.dtype), values])


def landmarks(
    part_map: jax.Array, part_ids: jax.Array, centers: jax.Array, pose: Pose
) -> tuple[jax.Array, jax.Array]:
    """Part centers in pixel units, each guaranteed to fall on its own part.

    The landmark is the nominal center (mean of the part's primitive centers,
    mapped through `pose`) when the pixel it rounds to shows that part; when
    that pixel is hidden or off the image, the landmark snaps to the nearest
    pixel that does show the part.

    Args:
      part_map: int32 [H, W] global part id per pixel (0 = no part).
      part_ids: int32 [L] part ids of the example's class (0 = padding).
      centers: float32 [L, 2] (x, y) nominal part centers in the object frame.
      pose: the object's pose.

    Returns:
      (points, visible): float32 [L, 2] (row, col) and bool [L].
    """
    h, w = part_map.shape
    xy = to_image_frame(centers, pose)
    nominal = jnp.stack([xy[:, 1] * h - 0.5, xy[:, 0] * w - 0.5], axis=-1)  # (row, col)
    rc = jnp.round(nominal).astype(jnp.int32)
    in_bounds = jnp.all((rc >= 0) & (rc < jnp.array([h, w])[None]), axis=-1)
    rc = jnp.clip(rc, 0, jnp.array([h - 1, w - 1])[None])
    on_part = in_bounds & (part_map[rc[:, 0], rc[:, 1]] == part_ids)
    hit = part_map[None] == part_ids[:, None, None]  # [L, H, W]
    rows = jnp.arange(h, dtype=jnp.float32)[None, :, None]
    cols = jnp.arange(w, dtype=jnp.float32)[None, None, :]
    d2 = (rows - nominal[:, 0, None, None]) ** 2 + (cols - nominal[:, 1, None, None]) ** 2
    d2 = jnp.where(hit, d2, jnp.inf)
    # argmin as two plain min-reductions: XLA's variadic argmin is several times slower.
    nearest = d2 == jnp.min(d2, axis=(1, 2), keepdims=True)
    flat_ids = jnp.arange(h * w, dtype=jnp.int32).reshape(1, h, w)
    flat = jnp.min(jnp.where(nearest & hit, flat_ids, h * w - 1), axis=(1, 2))
    snapped = jnp.stack([flat // w, flat % w], axis=-1).astype(jnp.float32)
    visible = jnp.any(hit, axis=(1, 2)) & (part_ids > 0)
    return jnp.where(on_part[:, None], nominal, snapped), visible


def render(sc: Scene, size: int, tables: T.TemplateTables) -> dict[str, jax.Array]:
    """Draws one example and its ground truth (see `SynthParts.batch` for the keys)."""
    x, y = pixel_grid(size)
    slot_part = jnp.asarray(tables.slot_part)[sc.label]
    geom = jnp.asarray(tables.slot_geom)[sc.label]
    geom = geom.at[:, 2:4].multiply(sc.size_jitter)
    kind = jnp.asarray(tables.slot_kind)[sc.label]
    qx, qy = to_object_frame(x, y, sc.pose)
    top = paint(qx, qy, geom, kind, slot_part > 0)
    obj = top > 0

    # Per-pixel lookups through the top primitive; index 0 means "no object".
    part_map = jnp.concatenate([jnp.zeros((1,), jnp.int32), slot_part])[top]
    color = jnp.where(obj, sc.colors[part_map] + 1, 0)
    texture = jnp.where(obj, sc.textures[part_map] + 1, 0)
    palette = jnp.asarray(T.COLOR_RGB)
    base = palette[jnp.maximum(color - 1, 0)]
    patterned = jnp.take_along_axis(texture_patterns(qx, qy), jnp.maximum(texture - 1, 0)[None], 0)[0]
    obj_rgb = jnp.where(patterned[..., None], shade(base), base)

    d_top = paint(x, y, sc.distractors, sc.distractor_kind, sc.distractor_color >= 0)
    d_rgb = palette[jnp.maximum(_with_none(sc.distractor_color)[d_top], 0)]
    bg = jnp.where((d_top > 0)[..., None], d_rgb, background(x, y, sc))

    image = jnp.where(obj[..., None], obj_rgb, bg)
    tinted = 0.7 * image + 0.3 * jnp.array(TINT_RGB, jnp.float32)[None, None]
    image = jnp.clip(jnp.where(sc.tint, tinted, image), 0.0, 1.0)

    lm_part = jnp.asarray(tables.lm_part)[sc.label]
    points, visible = landmarks(part_map, lm_part, jnp.asarray(tables.lm_center)[sc.label], sc.pose)
    num_parts = len(T.PART_NAMES)
    # Scatter the class's parts into the global part axis; padding lands in row 0.
    all_points = jnp.zeros((num_parts + 1, 2), jnp.float32).at[lm_part].set(points)[1:]
    all_visible = jnp.zeros((num_parts + 1,), bool).at[lm_part].set(visible)[1:]
    return {
        "image": image,
        "label": sc.label.astype(jnp.int32),
        "object_mask": obj,
        "part_mask": part_map,
        "landmarks": all_points,
        "landmark_visible": all_visible,
        "color": color.astype(jnp.int32),
        "texture": texture.astype(jnp.int32),
        "scene": sc.scene.astype(jnp.int32),
        "attributes": _attributes(sc, texture),
    }


def _attributes(sc: Scene, texture: jax.Array) -> jax.Array:
    """bool [A] in `ATTRIBUTE_NAMES` order."""
    mid_scale = 0.5 * (SCALE_RANGE[0] + SCALE_RANGE[1])
    return jnp.stack(
        [
            sc.tint,
            sc.scene == T.STRIPED_SCENE,
            sc.pose.flip,
            sc.pose.scale > mid_scale,
            jnp.any(texture > 1),
        ]
    )
