"""AlexNet in torchvision's layout (one tower, 64/192/384/256/256 channels).

Layers: conv1, relu1, pool1, conv2, relu2, pool2, conv3, relu3, conv4, relu4,
conv5, relu5, pool5, fc6, relu6, fc7, relu7, logits. The paper's input is
227x227 (pool5 is then [B,6,6,256]); an adaptive average pool to 6x6 before fc6
lets any input size from about 64 px up work, as in torchvision.
"""

import flax.linen as nn
import jax

from interp.nets._layers import adaptive_avg_pool, flatten, max_pool
from interp.nets._tap import tap
from interp.ops import relu

# (name, out channels, kernel, stride, padding, max-pool after?) of torchvision's
# `features`; weight import relies on this order.
ALEXNET_CONVS = (
    ("conv1", 64, 11, 4, 2, True),
    ("conv2", 192, 5, 1, 2, True),
    ("conv3", 384, 3, 1, 1, False),
    ("conv4", 256, 3, 1, 1, False),
    ("conv5", 256, 3, 1, 1, True),
)


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al., 2012) as `torchvision.models.alexnet`.

    Attributes:
      num_classes: number of output logits.
      dropout: dropout rate before fc6 and fc7 (rng name 'dropout').
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
    num_classes: int = 1000
    dropout: float = 0.5
    after_last_conv: nn.Module | None = None
    features_only: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Maps images [B, H, W, 3] to logits [B, num_classes]."""
        for name, width, kernel, stride, pad, pool in ALEXNET_CONVS:
            x = tap(nn.Conv(width, (kernel, kernel), stride, pad, name=name)(x), name)
            x = tap(relu(x), name.replace("conv", "relu"))
            if name == ALEXNET_CONVS[-1][0] and self.after_last_conv is not None:
                x = self.after_last_conv(x)
            if name == ALEXNET_CONVS[-1][0] and self.features_only:
                return x
            if pool:
                x = tap(max_pool(x, 3, 2), name.replace("conv", "pool"))
        x = flatten(adaptive_avg_pool(x, (6, 6)))
        for i in (6, 7):
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
            x = tap(nn.Dense(4096, name=f"fc{i}")(x), f"fc{i}")
            x = tap(relu(x), f"relu{i}")
        return tap(nn.Dense(self.num_classes, name="logits")(x), "logits")
