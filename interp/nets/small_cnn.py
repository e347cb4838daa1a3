"""SmallCNN: a four-block convolutional net sized for 64x64 SynthParts on a CPU.

Default layers on a 64x64 input (shapes for batch B):

  conv1 [B,32,32,16] (3x3, stride 2)  relu1  pool1 [B,16,16,16]
  conv2 [B,16,16,32]                  relu2  pool2 [B,8,8,32]
  conv3 [B,8,8,64]                    relu3
  conv4 [B,8,8,128]                   relu4
  gap [B,128]  logits [B,num_classes]

The head is global average pooling followed by one dense layer, so class
activation maps (CAM) apply directly to relu4. There is no BatchNorm, which keeps
every backward rule (deconvnet, guided backprop) simple. The max-pools are
the zoo's switch pool (`interp.ops.max_pool`): the gradient of a window goes
to its first maximum, as in torch and in deconvnet's switches, so attributions
match a torch port even on the flat regions of SynthParts. The widths and the
strided stem keep a jitted Adam step at batch 64 near 45 ms on two CPU cores;
a stride-1 stem with 32-64-128-128 channels costs about 7x that.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from interp.nets._layers import max_pool
from interp.nets._tap import tap
from interp.ops import relu

# He-normal init: ReLU nets without BatchNorm train faster from it than from
# Flax's LeCun default.
_HE = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


class SmallCNN(nn.Module):
    """conv3x3+ReLU blocks, optional 2x2 max-pools, GAP and a linear head.

    Attributes:
      num_classes: number of output logits.
      channels: output channels of conv1..convN.
      stem_stride: stride of conv1 (the later convs have stride 1).
      pools: per block, whether a 2x2 max-pool `pool{i}` follows `relu{i}`;
        same length as `channels`.
      after_last_conv: a module applied to the last conv layer's ReLU output
        (before any pool), e.g. the interpretable conv layer of Zhang et al.
        2018 (`interp.layers.InterpretableConv`); its output width must be the
        last conv's, so the head is unchanged.
      features_only: return the last conv layer's ReLU output [B, h, w, C]
        (after `after_last_conv`, before any pool) instead of the logits: the
        network as a backbone for another head (`interp.layers.released_icnn`);
        the head's parameters are then not created.
    """

    input_spec = (None, None, 3)  # per example: NHWC of any size, 3 channels
    num_classes: int = 10
    channels: Sequence[int] = (16, 32, 64, 128)
    stem_stride: int = 2
    pools: Sequence[bool] = (True, True, False, False)
    after_last_conv: nn.Module | None = None
    features_only: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Maps images [B, H, W, 3] to logits [B, num_classes].

        `train` is accepted for a uniform zoo signature; this net has no
        dropout or BatchNorm, so training and evaluation are the same function.
        """
        del train
        if len(self.pools) != len(self.channels):
            raise ValueError(
                f"pools has {len(self.pools)} entries; expected one per conv block "
                f"({len(self.channels)})"
            )
        for i, (width, pool) in enumerate(zip(self.channels, self.pools), start=1):
            stride = self.stem_stride if i == 1 else 1
            conv = nn.Conv(width, (3, 3), strides=stride, padding=1, kernel_init=_HE, name=f"conv{i}")
            x = tap(conv(x), f"conv{i}")
            x = tap(relu(x), f"relu{i}")
            if i == len(self.channels) and self.after_last_conv is not None:
                x = self.after_last_conv(x)
            if i == len(self.channels) and self.features_only:
                return x
            if pool:
                x = tap(max_pool(x, 2, 2), f"pool{i}")
        x = tap(x.mean(axis=(1, 2)), "gap")
        return tap(nn.Dense(self.num_classes, name="logits")(x), "logits")
