"""Semantic dictionaries and activation grids (Olah et al., Distill 2018, "The Building Blocks of Interpretability").

A semantic dictionary shows the activation vector at one spatial position of a
layer as its strongest channels, each with its feature visualization. An
activation grid shows, for every position of a layer, an image rendered to
produce that position's activation vector: what the network "sees" there.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp import nets
from interp.featviz.objectives import channel, direction
from interp.featviz.render import render_each


class SemanticDictionary(NamedTuple):
    """The top channels of an activation vector, with their visualizations.

    Attributes:
      channels: [b, k] channel indices, strongest first.
      values: [b, k] their activations at the position.
      visualizations: [b, k, H, W, 3] each channel's rendered image.
    """

    channels: jax.Array
    values: jax.Array
    visualizations: jax.Array


def _spatial_activations(model: nets.Model, layer: str, images: jax.Array) -> jax.Array:
    acts = model.activations(images, layer)[layer]
    if acts.ndim != 4:
        raise ValueError(f"layer: expected a spatial layer [b, h, w, c], {layer!r} has shape {list(acts.shape)}")
    return acts


def top_channels(model: Any, layer: str, images: jax.Array, position: tuple[int, int], k: int = 4):
    """The `k` strongest channels of `layer` at `position` (row, col) for each image.

    Returns:
      `(channels [b, k], values [b, k])`, strongest first.
    """
    acts = _spatial_activations(nets.as_model(model), layer, images)
    h, w, c = acts.shape[1:]
    row, col = position
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"position: expected (row, col) inside the {h}x{w} map of {layer!r}, got {position}")
    if not 1 <= k <= c:
        raise ValueError(f"k: expected 1..{c} (channels of {layer!r}), got {k}")
    values, channels = jax.lax.top_k(acts[:, row, col], k)
    return channels, values


def semantic_dictionary(
    model: Any,
    layer: str,
    images: jax.Array,
    position: tuple[int, int],
    *,
    key: jax.Array,
    k: int = 4,
    render_layer: str | None = None,
    **render_options,
) -> SemanticDictionary:
    """The semantic dictionary of `position` in `layer` for each image [b, H, W, 3].

    The top channels of all images are rendered in one `render_each` call;
    `render_options` go to it (param, transforms, steps, mesh, ...).
    `render_layer` renders the channels at another layer with the same
    channels, typically the pre-ReLU conv under a ReLU `layer`: a ReLU unit
    that is silent on the gray start image has no gradient to climb.
    """
    model = nets.as_model(model)
    channels, values = top_channels(model, layer, images, position, k)
    target = layer if render_layer is None else render_layer
    rendering = render_each(model, lambda c: channel(target, c), channels.reshape(-1), key=key, **render_options)
    last = rendering.images[:, -1, 0]  # the final image of each channel's render
    return SemanticDictionary(channels, values, last.reshape(channels.shape + last.shape[1:]))


def activation_grid(
    model: Any, layer: str, image: jax.Array, *, key: jax.Array, cosine_power: float = 1.0, **render_options
) -> jax.Array:
    """For each position of `layer` on `image` [H, W, 3], an image rendered to match its activation vector.

    Each cell maximizes `direction(layer, v_ij, cosine_power)` for the
    activation vector `v_ij` at (i, j), averaged over the positions of the
    rendered image, so it shows what makes the network produce `v_ij` rather
    than what sits at (i, j). Positions whose vector is zero (a dead ReLU
    everywhere) render as the start image.

    Returns:
      [h, w, S, S', 3], one rendered image per position (S x S' from the
      `param` render option).
    """
    model = nets.as_model(model)
    image = jnp.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image: expected one image [H, W, 3], got shape {list(image.shape)}")
    acts = _spatial_activations(model, layer, image[None])[0]
    h, w, c = acts.shape
    rendering = render_each(
        model,
        lambda v: direction(layer, v, cosine_power=cosine_power),
        acts.reshape(h * w, c),
        key=key,
        **render_options,
    )
    cells = rendering.images[:, -1, 0]
    return cells.reshape((h, w) + cells.shape[1:])


def grid_to_image(cells: np.ndarray, border: int = 1) -> np.ndarray:
    """Tiles [h, w, S, S', 3] cells into one [h*(S+border), w*(S'+border), 3] image with white borders."""
    cells = np.asarray(cells)
    h, w, s1, s2, c = cells.shape
    canvas = np.ones((h * (s1 + border), w * (s2 + border), c), cells.dtype)
    for i in range(h):
        for j in range(w):
            canvas[i * (s1 + border) : i * (s1 + border) + s1, j * (s2 + border) : j * (s2 + border) + s2] = cells[i, j]
    return canvas
