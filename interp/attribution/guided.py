"""Deconvnet, guided backpropagation and guided Grad-CAM.

Deconvnet (Zeiler & Fergus, 2014) and guided backprop (Springenberg et al.,
2015) are input gradients of a function whose ReLUs pass back a different
signal (see `interp.ops.backward_rules`); max-pools keep their switches. The
function is rewritten through its jaxpr, so a zoo model, a `Model` and a plain
function written with `lax.conv` and `jax.nn.relu` all work unchanged.

Guided Grad-CAM (Selvaraju et al., 2017) multiplies guided backprop, pixel by
pixel, with the class's Grad-CAM map upsampled to the input.
"""

from typing import Any

import jax

from interp._checks import Target
from interp.attribution._core import ScoreFn, check_batch, check_fn, input_gradients
from interp.attribution.cam import grad_cam
from interp.nets.adapter import Model, as_model
from interp.ops import with_relu_backward


def _rewrite(fn: ScoreFn, rule: str) -> ScoreFn:
    """`fn` with `rule` ReLUs; a `Model` stays a `Model` (same params, names, spec)."""
    if isinstance(fn, Model):
        return fn.replace(apply_fn=with_relu_backward(fn.apply_fn, rule))
    return with_relu_backward(fn, rule)


def _modified_gradient(fn: ScoreFn, rule: str):
    fn = check_fn(fn)
    rewritten = _rewrite(fn, rule)

    def attribute(x: jax.Array, target: Target = None) -> jax.Array:
        x = check_batch(fn, x)
        return input_gradients(rewritten, x, target)[1]

    return attribute


def deconvnet(fn: ScoreFn):
    """Deconvnet reconstruction: the backward pass with `relu(g)` at every ReLU.

    Args:
      fn: `x` [b, ...] to scores [b] or logits [b, C] (any JAX callable or `Model`).

    Returns:
      `attribute(x, target=None)` -> [b, ...] like `x` ([b, k, ...] for a
      [b, k] target).

    Raises:
      TypeError: `fn` is a Linen module without variables (see `_core.check_fn`).
    """
    return _modified_gradient(fn, "deconvnet")


def guided_backprop(fn: ScoreFn):
    """Guided backpropagation: the gradient with `g * (x > 0) * (g > 0)` at every ReLU.

    Args:
      fn: `x` [b, ...] to scores [b] or logits [b, C] (any JAX callable or `Model`).

    Returns:
      `attribute(x, target=None)` -> [b, ...] like `x` ([b, k, ...] for a
      [b, k] target).

    Raises:
      TypeError: `fn` is a Linen module without variables (see `_core.check_fn`).
    """
    return _modified_gradient(fn, "guided")


def guided_grad_cam(model: Any, layer: str, *, variables: Any = None):
    """Guided Grad-CAM: guided backprop times the upsampled Grad-CAM map of `layer`.

    Args:
      model: a `Model`, or a Linen module with `variables` (as `grad_cam`
        takes), on NHWC images [b, h, w, c].
      layer: the tap name of the convolutional layer Grad-CAM reads.
      variables: the Linen module's variables, when `model` is a module.

    Returns:
      `attribute(x, target=None)` -> [b, h, w, c] ([b, k, h, w, c] for a
      [b, k] target): each pixel's guided-backprop vector scaled by that
      pixel's Grad-CAM weight.
    """
    model = as_model(model, variables)
    guided = guided_backprop(model)
    cam = grad_cam(model, layer, relu=True)

    def attribute(x: jax.Array, target: Target = None) -> jax.Array:
        grads = guided(x, target)
        heat = cam(x, target)
        if heat.shape != grads.shape[:-1]:
            raise ValueError(
                f"guided_grad_cam: Grad-CAM map {list(heat.shape)} does not match the "
                f"input's pixels {list(grads.shape[:-1])}; expected NHWC images"
            )
        return grads * heat[..., None]

    return attribute
