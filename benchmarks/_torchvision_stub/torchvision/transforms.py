"""`torchvision.transforms.Normalize`, the one class Lucent imports."""

from collections.abc import Sequence

import torch


class Normalize(torch.nn.Module):
    """(x - mean) / std per channel of a [..., C, H, W] tensor, as torchvision's."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        super().__init__()
        self.mean, self.std = list(mean), list(std)
        del inplace  # out of place always; Lucent never asks otherwise

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)[:, None, None]
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)[:, None, None]
        return (tensor - mean) / std
