"""The Lucent side of `benchmarks/featviz.py`: feature visualization in torch, eager, on CPU.

Two ways to run the same optimization on the torch SmallCNN port
(`benchmarks/_torch_reference.py`):

  * `render`: Lucent's `render_vis` exactly as a user calls it (every module
    hooked, the whole network run forward each step, gradients also taken for
    the network's weights since nothing freezes them);
  * `lean`: the same parameterization, transforms, optimizer and objective
    written as a bare loop, forward only up to the objective's layer and the
    weights frozen: what a careful torch user could get without Lucent's
    generality, so the table shows how much of Lucent's time is its own.

Both draw random transforms with `numpy.random` (as Lucent does), one draw
per step shared by the whole batch.
"""

import os
import sys
from collections.abc import Callable, Sequence

import numpy as np
import torch

_STUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_torchvision_stub")


def import_lucent():
    """Lucent's `render, param, objectives, transform` modules, with the torchvision stand-in on the path.

    Lucent imports `torchvision.transforms.Normalize` at module level; the
    stand-in provides just that (see `_torchvision_stub/torchvision`).
    """
    try:
        import torchvision  # noqa: F401  (a real one wins if installed)
    except ImportError:
        sys.path.insert(0, _STUB)
    from lucent.optvis import objectives, param, render, transform

    return render, param, objectives, transform


def channel_objective(layer: str, channel: int):
    """Lucent's objective for one channel's mean activation (it minimizes the negation)."""
    _, _, objectives, _ = import_lucent()
    return objectives.channel(layer, channel)


def all_channels_objective(layer: str, channels: int):
    """Image c maximizes channel c: Lucent's way to render a layer's channels as one batch."""
    _, _, objectives, _ = import_lucent()
    return sum(objectives.channel(layer, c, batch=c) for c in range(channels))


def render(
    net: torch.nn.Module,
    objective,
    *,
    size: int,
    batch: int,
    input_size: int,
    steps: int,
    learning_rate: float,
) -> np.ndarray:
    """Lucent's `render_vis` with Fourier, decorrelated images and its standard transforms.

    Args:
      net: the torch network (layers found by attribute name, e.g. "relu3").
      objective: a Lucent objective or "layer:channel".
      size: the optimized image's height and width.
      batch: images optimized together.
      input_size: the size the transformed image is resized to before the
        network (`fixed_image_size`; without it Lucent resizes to 224).
      steps: optimization steps.
      learning_rate: Adam's.

    Returns:
      The final images [batch, size, size, 3] in [0, 1].
    """
    render_lib, param, _, transform = import_lucent()
    images = render_lib.render_vis(
        net,
        objective,
        lambda: param.image(size, batch=batch, fft=True, decorrelate=True),
        optimizer=lambda params: torch.optim.Adam(params, lr=learning_rate),
        transforms=transform.standard_transforms,
        thresholds=(steps,),
        preprocess=False,  # the net takes [0, 1] images; no ImageNet normalization
        progress=False,
        show_image=False,
        fixed_image_size=input_size,
    )
    return images[-1]


def truncated_forward(net: torch.nn.Module, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The port's forward pass stopped at `layer` (one of its block names)."""
    names = [n for block in net.blocks for n in block]
    if layer not in names:
        raise ValueError(f"layer: {layer!r} not in the torch port; known: {', '.join(names)}")
    modules = [getattr(net, n) for n in names[: names.index(layer) + 1]]

    def forward(x):
        for m in modules:
            x = m(x)
        return x

    return forward


def lean(
    net: torch.nn.Module,
    layer: str,
    channels: Sequence[int],
    *,
    size: int,
    input_size: int,
    steps: int,
    learning_rate: float,
) -> np.ndarray:
    """Lucent's ops without `render_vis`: image i maximizes the mean of `layer`'s channel `channels[i]`.

    Returns:
      The final images [len(channels), size, size, 3] in [0, 1].
    """
    _, param, _, transform = import_lucent()
    params, image_f = param.image(size, batch=len(channels), fft=True, decorrelate=True)
    transform_f = transform.compose(
        transform.standard_transforms
        + [torch.nn.Upsample(size=input_size, mode="bilinear", align_corners=True)]
    )
    forward = truncated_forward(net, layer)
    index = torch.arange(len(channels))
    wanted = torch.as_tensor(list(channels))
    optimizer = torch.optim.Adam(params, lr=learning_rate)
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            acts = forward(transform_f(image_f()))
            loss = -acts[index, wanted].mean(dim=(1, 2)).sum()
            loss.backward()
            optimizer.step()
    finally:
        for p in net.parameters():
            p.requires_grad_(True)
    return image_f().detach().numpy().transpose(0, 2, 3, 1)
