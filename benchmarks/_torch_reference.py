"""SmallCNN in PyTorch with the weights of a Flax SmallCNN, for the Captum benchmark.

Captum's GuidedBackprop and Deconvolution override the backward pass of
`nn.ReLU` *modules*, so every ReLU here is its own `nn.ReLU` (never
`F.relu`), and every max-pool its own `nn.MaxPool2d`. Layer attributes carry
the zoo's tap names (`conv1`, `relu1`, `pool1`, ..., `relu4`, `logits`), so
`LayerGradCam(net, net.relu4)` reads the layer `interp` calls "relu4".

Layouts: torch is NCHW with OIHW kernels; Flax is NHWC with HWIO kernels; a
Flax Dense kernel is [in, out], a torch Linear weight [out, in].
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


class SmallCNN(nn.Module):
    """The zoo's SmallCNN (see `interp/nets/small_cnn.py`) as a torch module, NCHW."""

    def __init__(
        self,
        num_classes: int = 10,
        channels: Sequence[int] = (16, 32, 64, 128),
        stem_stride: int = 2,
        pools: Sequence[bool] = (True, True, False, False),
    ):
        super().__init__()
        self.blocks = []
        width_in = 3
        for i, (width, pool) in enumerate(zip(channels, pools), start=1):
            stride = stem_stride if i == 1 else 1
            setattr(self, f"conv{i}", nn.Conv2d(width_in, width, 3, stride=stride, padding=1))
            setattr(self, f"relu{i}", nn.ReLU())
            names = [f"conv{i}", f"relu{i}"]
            if pool:
                setattr(self, f"pool{i}", nn.MaxPool2d(2))
                names.append(f"pool{i}")
            self.blocks.append(names)
            width_in = width
        self.logits = nn.Linear(width_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] to logits [B, num_classes]."""
        for names in self.blocks:
            for name in names:
                x = getattr(self, name)(x)
        return self.logits(x.mean(dim=(2, 3)))


def from_flax(variables: Mapping[str, Any], num_classes: int, **config) -> SmallCNN:
    """A torch SmallCNN (eval mode, float32) holding the Flax SmallCNN `variables`.

    Args:
      variables: `module.init(...)` of `interp.nets.create_module("small_cnn", ...)`.
      num_classes: as in the Flax module.
      **config: `channels`, `stem_stride`, `pools`, as in the Flax module.
    """
    params = variables["params"]
    net = SmallCNN(num_classes=num_classes, **config)
    state = {}
    for name, leaf in params.items():
        kernel, bias = np.asarray(leaf["kernel"]), np.asarray(leaf["bias"])
        if kernel.ndim == 4:  # HWIO -> OIHW
            kernel = kernel.transpose(3, 2, 0, 1)
        else:  # [in, out] -> [out, in]
            kernel = kernel.T
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        state[f"{name}.bias"] = torch.from_numpy(bias.copy())
    missing, unexpected = net.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    return net.eval().float()


def to_nchw(x: Any) -> torch.Tensor:
    """A NHWC array (numpy or JAX) as a contiguous NCHW float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 3, 1, 2)))


def to_nhwc(t: torch.Tensor) -> np.ndarray:
    """A NCHW tensor as a NHWC numpy array (other ranks are returned as they are)."""
    a = t.detach().cpu().numpy()
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a
