"""The attribution methods of `interp` and their Captum counterparts, case by case.

Each `Case` holds the two sides on the same network, weights and inputs:

  * `interp(model, x, target)`: jitted; `model` is an argument (a pytree), so
    the weights are not baked into the compiled program as constants;
  * `captum(xt, tt)`: Captum in eager torch, its normal use;
  * `reference(x)`: what to compare the interp result with, NHWC numpy, when it
    is not simply `captum(xt, tt)` (SmoothGrad: the same noise);
  * `to_common(a, c)`: both outputs as numpy arrays of one layout.

Conventions matched (see the notes printed under the table):
  * saliency: |gradient| (interp mode="absolute", Captum `abs=True`).
  * IG: zero baseline; Gauss-Legendre nodes and weights are the same in both.
    Captum's `riemann_trapezoid` weights sum to (n-1)/n instead of 1, so its
    result is scaled by n/(n-1) before comparing.
  * occlusion: a window covers all 3 channels (Captum (3, 8, 8), strides
    (3, 4, 4)), fill 0.5, each pixel the mean drop over the windows covering
    it; Captum's map repeats over channels, channel 0 is compared. Captum
    evaluates `perturbations_per_eval` windows per forward pass, set to
    interp's `chunk_size`.
  * Grad-CAM: at relu4's resolution (interp `upsample=False`, Captum
    `LayerGradCam(..., relu_attributions=True)`), 8x8.
  * guided Grad-CAM: Captum with `interpolate_mode="bilinear"`
    (`F.interpolate`, align_corners=False), interp's `jax.image.resize`
    bilinear (half-pixel centers): the same upsampling.
  * SmoothGrad: interp's noise is sigma_i = noise_std * (max x_i - min x_i)
    per example; Captum takes one `stdevs` for the batch. For equality,
    interp's noisy inputs (same key, same split) are fed to Captum's
    saliency and averaged; for timing, Captum's `NoiseTunnel` draws its own
    noise with the same number of samples, as many per call
    (`nt_samples_batch_size`, as interp's `chunk_size`).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import torch
from captum import attr as captum_attr

from benchmarks import _torch_reference as tref
from interp import attribution as A
from interp.attribution import deconvnet, guided_backprop, guided_grad_cam


@dataclasses.dataclass
class Case:
    name: str
    interp: Callable[[Any, jax.Array, jax.Array], jax.Array]
    captum: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    to_common: Callable[[np.ndarray, torch.Tensor], tuple[np.ndarray, np.ndarray]] = None
    reference: Callable[[jax.Array], np.ndarray] | None = None
    note: str = ""


def _nhwc(a, c):
    return np.asarray(a), tref.to_nhwc(c)


def _jit(make: Callable[[Any], Callable]) -> Callable:
    """`make(model)` is an interp attribute function; jitted with the model as an argument."""
    return jax.jit(lambda model, x, t: make(model)(x, t))


def build(
    model: Any,
    net: torch.nn.Module,
    x: jax.Array,
    target: jax.Array,
    *,
    ig_steps: int = 64,
    ig_chunk: int | None = 4,
    sg_samples: int = 32,
    sg_chunk: int | None = 4,
    sg_noise: float = 0.15,
    window: int = 8,
    stride: int = 4,
    occlusion_chunk: int = 64,
    cam_layer: str = "relu4",
) -> list[Case]:
    """Every case on `model` (an interp `Model`) and `net` (the same weights in torch).

    `ig_chunk` path points and `sg_chunk` noisy copies per network call, on
    both sides (Captum's `internal_batch_size` counts rows: chunk x batch).
    """
    layer = getattr(net, cam_layer)
    ig_rows = None if ig_chunk is None else ig_chunk * len(x)
    cases = [
        Case(
            "saliency",
            _jit(lambda m: A.saliency(m, mode="absolute")),
            lambda xt, tt: captum_attr.Saliency(net).attribute(xt, target=tt, abs=True),
            _nhwc,
        ),
        Case(
            "gradient_x_input",
            _jit(A.gradient_x_input),
            lambda xt, tt: captum_attr.InputXGradient(net).attribute(xt, target=tt),
            _nhwc,
        ),
        Case(
            f"integrated_gradients (gauss_legendre, {ig_steps} steps)",
            jax.jit(lambda m, x, t: A.integrated_gradients(m, ig_steps, "gauss_legendre", ig_chunk)(x, t)),
            lambda xt, tt: captum_attr.IntegratedGradients(net).attribute(
                xt, target=tt, n_steps=ig_steps, method="gausslegendre", internal_batch_size=ig_rows
            ),
            _nhwc,
        ),
        Case(
            f"integrated_gradients (riemann_trapezoid, {ig_steps} steps)",
            jax.jit(lambda m, x, t: A.integrated_gradients(m, ig_steps, "riemann_trapezoid", ig_chunk)(x, t)),
            lambda xt, tt: captum_attr.IntegratedGradients(net).attribute(
                xt, target=tt, n_steps=ig_steps, method="riemann_trapezoid", internal_batch_size=ig_rows
            ),
            lambda a, c: (np.asarray(a), tref.to_nhwc(c) * ig_steps / (ig_steps - 1)),
            note="Captum's trapezoid weights sum to (n-1)/n; its result is scaled by n/(n-1)",
        ),
        _smooth_grad_case(net, x, target, sg_samples, sg_noise, sg_chunk),
        Case(
            f"occlusion ({window}x{window}, stride {stride})",
            _jit(lambda m: A.occlusion(m, (window, window), (stride, stride), 0.5, chunk_size=occlusion_chunk)),
            lambda xt, tt: captum_attr.Occlusion(net).attribute(
                xt,
                sliding_window_shapes=(3, window, window),
                strides=(3, stride, stride),
                baselines=0.5,
                target=tt,
                perturbations_per_eval=occlusion_chunk,
            ),
            lambda a, c: (np.asarray(a), c.detach().numpy()[:, 0]),
        ),
        Case(
            f"grad_cam ({cam_layer}, layer resolution)",
            _jit(lambda m: A.grad_cam(m, cam_layer, upsample=False)),
            lambda xt, tt: captum_attr.LayerGradCam(net, layer).attribute(xt, target=tt, relu_attributions=True),
            lambda a, c: (np.asarray(a), c.detach().numpy()[:, 0]),
        ),
        Case(
            "deconvnet",
            _jit(deconvnet),
            lambda xt, tt: captum_attr.Deconvolution(net).attribute(xt, target=tt),
            _nhwc,
        ),
        Case(
            "guided_backprop",
            _jit(guided_backprop),
            lambda xt, tt: captum_attr.GuidedBackprop(net).attribute(xt, target=tt),
            _nhwc,
        ),
        Case(
            f"guided_grad_cam ({cam_layer}, bilinear)",
            _jit(lambda m: guided_grad_cam(m, cam_layer)),
            lambda xt, tt: captum_attr.GuidedGradCam(net, layer).attribute(
                xt, target=tt, interpolate_mode="bilinear"
            ),
            _nhwc,
        ),
    ]
    return cases


def _smooth_grad_case(net, x, target, samples: int, noise: float, chunk: int | None) -> Case:
    key = jax.random.key(0)

    def make(m):
        return A.smooth_grad(A.saliency(m, mode="absolute"), noise_std=noise, samples=samples, chunk_size=chunk)

    def reference(x):
        # interp's noise, drawn as smooth_grad draws it, through Captum's saliency.
        axes = tuple(range(1, x.ndim))
        sigma = noise * (x.max(axis=axes, keepdims=True) - x.min(axis=axes, keepdims=True))
        total = 0.0
        for k in jax.random.split(key, samples):
            noisy = x + sigma * jax.random.normal(k, x.shape, x.dtype)
            total = total + captum_attr.Saliency(net).attribute(
                tref.to_nchw(noisy), target=torch.from_numpy(np.asarray(target, np.int64)), abs=True
            )
        return tref.to_nhwc(total / samples)

    return Case(
        f"smooth_grad (saliency, {samples} samples)",
        jax.jit(lambda m, x, t: make(m)(x, t, key=key)),
        lambda xt, tt: captum_attr.NoiseTunnel(captum_attr.Saliency(net)).attribute(
            xt, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=chunk, stdevs=noise, target=tt, abs=True
        ),
        lambda a, c: (np.asarray(a), c),
        reference=reference,
        note="equality against Captum's saliency on interp's noisy inputs; timing against NoiseTunnel",
    )
