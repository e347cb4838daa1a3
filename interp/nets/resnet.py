"""ResNet-18 and ResNet-50 (He et al., 2016) in torchvision's layout.

Top-level layers: conv1, bn1, relu, maxpool, layer1..layer4 (stage outputs),
avgpool, logits. Inside block j of stage i the names are `layer{i}.{j}.conv1`,
`.bn1`, `.relu1`, `.conv2`, `.bn2`, [`.relu2`, `.conv3`, `.bn3` for
bottlenecks], `.downsample` (the projected shortcut, when there is one), and
the block output `layer{i}.{j}` (after the final ReLU). Bottlenecks put the
stride on the 3x3 conv (torchvision's "ResNet v1.5").

Flax parameter paths use `layer{i}_{j}` for block modules (e.g.
params['layer1_0']['conv1']['kernel']) with children conv1, bn1, ..., and
downsample_conv / downsample_bn; `interp.nets.weights` maps torchvision keys
onto them. BatchNorm uses torch's momentum 0.1 (Flax 0.9) and epsilon 1e-5.
"""

from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax

from interp.nets._layers import max_pool
from interp.nets._tap import tap
from interp.ops import relu

_conv = partial(nn.Conv, use_bias=False)
_bn = partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and a residual connection (expansion 1).

    Attributes:
      width: channels of both convs and of the output.
      stride: stride of the first conv (and of the shortcut projection).
      prefix: layer-name prefix, e.g. "layer2.0".
    """

    width: int
    stride: int
    prefix: str
    expansion = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """[B, H, W, C] -> [B, H/stride, W/stride, width]."""
        p, bn = self.prefix, partial(_bn, use_running_average=not train)
        y = tap(_conv(self.width, (3, 3), self.stride, 1, name="conv1")(x), f"{p}.conv1")
        y = tap(bn(name="bn1")(y), f"{p}.bn1")
        y = tap(relu(y), f"{p}.relu1")
        y = tap(_conv(self.width, (3, 3), 1, 1, name="conv2")(y), f"{p}.conv2")
        y = tap(bn(name="bn2")(y), f"{p}.bn2")
        return tap(relu(y + _shortcut(self, x, self.width, train)), p)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), BatchNorm, residual connection.

    Attributes:
      width: channels of the inner convs; the output has 4 * width.
      stride: stride of the 3x3 conv (and of the shortcut projection).
      prefix: layer-name prefix, e.g. "layer2.0".
    """

    width: int
    stride: int
    prefix: str
    expansion = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """[B, H, W, C] -> [B, H/stride, W/stride, 4 * width]."""
        p, bn = self.prefix, partial(_bn, use_running_average=not train)
        y = tap(_conv(self.width, (1, 1), name="conv1")(x), f"{p}.conv1")
        y = tap(bn(name="bn1")(y), f"{p}.bn1")
        y = tap(relu(y), f"{p}.relu1")
        y = tap(_conv(self.width, (3, 3), self.stride, 1, name="conv2")(y), f"{p}.conv2")
        y = tap(bn(name="bn2")(y), f"{p}.bn2")
        y = tap(relu(y), f"{p}.relu2")
        out = self.width * self.expansion
        y = tap(_conv(out, (1, 1), name="conv3")(y), f"{p}.conv3")
        y = tap(bn(name="bn3")(y), f"{p}.bn3")
        return tap(relu(y + _shortcut(self, x, out, train)), p)


def _shortcut(block: nn.Module, x: jax.Array, out: int, train: bool) -> jax.Array:
    """Identity, or a strided 1x1 conv + BatchNorm when the shape changes.

    Called from a block's compact `__call__`, so the projection's submodules
    (downsample_conv, downsample_bn) belong to that block.
    """
    if block.stride == 1 and x.shape[-1] == out:
        return x
    x = _conv(out, (1, 1), block.stride, name="downsample_conv")(x)
    x = _bn(use_running_average=not train, name="downsample_bn")(x)
    return tap(x, f"{block.prefix}.downsample")


class ResNet(nn.Module):
    """A torchvision ResNet: 7x7/2 stem, 3x3/2 max-pool, four stages, GAP, linear.

    Attributes:
      block: `BasicBlock` or `Bottleneck`.
      stage_sizes: number of blocks in layer1..layer4.
      num_classes: number of output logits.
    """

    block: type[nn.Module]
    stage_sizes: Sequence[int]
    input_spec = (None, None, 3)  # per example: NHWC of any size, 3 channels
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Maps images [B, H, W, 3] to logits [B, num_classes]; 224 px gives layer4 7x7."""
        x = tap(_conv(64, (7, 7), 2, 3, name="conv1")(x), "conv1")
        x = tap(_bn(use_running_average=not train, name="bn1")(x), "bn1")
        x = tap(relu(x), "relu")
        x = tap(max_pool(x, 3, 2, pad=1), "maxpool")  # -inf padding, not zeros
        for i, blocks in enumerate(self.stage_sizes, start=1):
            for j in range(blocks):
                stride = 2 if i > 1 and j == 0 else 1
                width = 64 * 2 ** (i - 1)
                x = self.block(width, stride, f"layer{i}.{j}", name=f"layer{i}_{j}")(x, train)
            x = tap(x, f"layer{i}")
        x = tap(x.mean(axis=(1, 2)), "avgpool")
        return tap(nn.Dense(self.num_classes, name="logits")(x), "logits")


def ResNet18(num_classes: int = 1000, **kw) -> ResNet:  # noqa: N802
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]) as `torchvision.models.resnet18`."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, **kw)


def ResNet50(num_classes: int = 1000, **kw) -> ResNet:  # noqa: N802
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]) as `torchvision.models.resnet50`."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, **kw)
