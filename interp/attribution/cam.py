"""Class activation maps: CAM (Zhou et al., 2016), Grad-CAM (Selvaraju et al.,
2017) and Grad-CAM++ (Chattopadhay et al., 2018), at any named layer.

Every map is a weighted sum of a layer's channels, [b, h', w'] at the
layer's resolution, upsampled bilinearly to the input's [b, h, w] by default.
`model` is anything `interp.nets.as_model` accepts (a `Model`, or a Linen
module with `variables=`); layers are NHWC, as in the zoo.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from interp import ops
from interp._checks import Target, check_target_range, nan_out_of_range, normalize_target, select_scores
from interp.attribution._core import check_batch
from interp.nets.adapter import Model, as_model


def cam(
    model: Any,
    layer: str,
    class_weights: jax.Array | None = None,
    *,
    head: str = "logits",
    variables: Any = None,
    upsample: bool = True,
) -> Callable[..., jax.Array]:
    """CAM for a global-average-pooling + linear head: sum_c w[c, target] * A[..., c].

    Args:
      model: the network; `layer` must be the one the GAP reads.
      layer: name of the spatial layer [b, h', w', c].
      class_weights: the head's kernel [c, classes]; by default the one
        matrix among the parameters the layer `head` owns (see
        `interp.nets.Model.layer_params`). The head's bias only shifts every
        pixel equally and is left out.
      head: the dense head's tap name when `class_weights` is None (the zoo's
        SmallCNN and ResNets call it `logits`).
      variables: the variables when `model` is a Linen module.
      upsample: resize to the input's size (True) or keep the layer's.

    Returns:
      `attribute(x, target)`: [b, h, w] (or [b, k, h, w] for a [b, k] target).
    """
    model = as_model(model, variables)

    def attribute(x: jax.Array, target: Target) -> jax.Array:
        x, target = _prepare(model, x, layer, target)
        weights = _head_kernel(model, x, head) if class_weights is None else jnp.asarray(class_weights)
        acts = model.activations(x, layer)[layer]
        if target is None:
            raise ValueError("target: CAM needs a target class to take the head weights of")
        check_target_range(jax.ShapeDtypeStruct((x.shape[0], weights.shape[1]), weights.dtype), target)
        # A traced target out of range gives NaN weights (indexing alone would clamp or wrap it).
        w = weights[:, target] * nan_out_of_range(target, weights.shape[1])[None]  # [c, b] or [c, b, k]
        maps = jnp.einsum("bhwc,cb...->b...hw", acts, w)
        return _finish(maps, x, upsample)

    return attribute


def grad_cam(
    model: Any, layer: str, relu: bool = True, *, variables: Any = None, upsample: bool = True
) -> Callable[..., jax.Array]:
    """Grad-CAM: channels weighted by their spatially averaged gradient.

    map = relu(sum_c alpha_c A_c), alpha_c = mean_ij dS/dA_ijc. On a GAP +
    linear head read at the GAP's input, alpha_c = w[c, target] / (h' w'), so
    Grad-CAM (relu=False) equals CAM / (h' w') exactly.

    Args:
      model, layer, variables, upsample: as in `cam`.
      relu: keep only positive evidence (as in the paper).

    Returns:
      `attribute(x, target=None)`: [b, h, w] (or [b, k, h, w] for a [b, k]
      target, sharing one forward pass).
    """
    model = as_model(model, variables)

    def weigh(acts, grads):
        return grads.mean(axis=(1, 2))

    return _gradient_cam(model, layer, weigh, relu, upsample)


def grad_cam_plus_plus(
    model: Any, layer: str, *, variables: Any = None, upsample: bool = True
) -> Callable[..., jax.Array]:
    """Grad-CAM++: pixel-wise weighted positive gradients.

    With the exponential of the class score S as the explained output, the
    higher derivatives have the closed form of Chattopadhay et al. (their
    eq. 19): with g = dS/dA, alpha_ijc = g^2 / (2 g^2 + sum_ab A_abc g^3), and
    the channel weight w_c = sum_ij alpha_ijc relu(g_ijc) (the common exp(S)
    factor is dropped). map = relu(sum_c w_c A_c) >= 0. Where the denominator
    is 0, alpha is 0.

    Returns:
      `attribute(x, target=None)`: [b, h, w] (or [b, k, h, w]).
    """
    model = as_model(model, variables)

    def weigh(acts, grads):
        g2 = grads * grads
        denom = 2.0 * g2 + (acts * g2 * grads).sum(axis=(1, 2), keepdims=True)
        alpha = jnp.where(denom != 0, g2 / jnp.where(denom != 0, denom, 1.0), 0.0)
        return (alpha * ops.relu(grads)).sum(axis=(1, 2))

    return _gradient_cam(model, layer, weigh, True, upsample)


def _gradient_cam(model: Model, layer: str, weigh: Callable, relu: bool, upsample: bool) -> Callable:
    """A CAM whose channel weights `weigh(acts, grads) -> [b, c]` come from gradients."""

    def one_target(x, target):
        _, acts, grads = model.activations_and_grads(x, layer, lambda out: select_scores(out, target))
        acts, grads = acts[layer], grads[layer]
        maps = jnp.einsum("bhwc,bc->bhw", acts, weigh(acts, grads))
        return ops.relu(maps) if relu else maps

    def attribute(x: jax.Array, target: Target = None) -> jax.Array:
        x, target = _prepare(model, x, layer, target)
        # Checked here, while concrete: inside the vmap over many targets it is not.
        check_target_range(jax.eval_shape(model, x), target)
        if target is None or target.ndim == 1:
            return _finish(one_target(x, target), x, upsample)
        # k targets: only the backward pass is batched; x is shared, so the
        # forward pass runs once.
        maps = jax.vmap(lambda t: one_target(x, t), in_axes=1, out_axes=1)(target)
        return _finish(maps, x, upsample)

    return attribute


def _prepare(model: Model, x, layer, target):
    """Checks `x` and that `layer` is spatial; returns x and the normalized target."""
    x = check_batch(model, x)
    model.spatial_layer_shape(x, layer)
    return x, normalize_target(target, x.shape[0])


def _finish(maps: jax.Array, x: jax.Array, upsample: bool) -> jax.Array:
    """Upsamples [b, ..., h', w'] maps bilinearly to the input's spatial size."""
    if not upsample:
        return maps
    return jax.image.resize(maps, (*maps.shape[:-2], *x.shape[1:3]), "bilinear")


def _head_kernel(model: Model, x: jax.Array, head: str) -> jax.Array:
    """The one matrix [c, classes] among the parameters of layer `head`."""
    try:
        owned = model.layer_params(x, head)
    except ValueError as error:
        raise ValueError(f"class_weights: no dense head {head!r} to read ({error}); "
                         "pass class_weights [channels, classes] or head=") from None
    matrices = [value for value in owned.values() if jnp.ndim(value) == 2]
    if len(matrices) != 1:
        raise ValueError(f"class_weights: layer {head!r} owns {len(matrices)} matrices ({', '.join(owned)}), "
                         "not one dense kernel; pass class_weights [channels, classes]")
    return matrices[0]

