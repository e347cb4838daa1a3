"""VGG-16 (Simonyan & Zisserman, 2015) and VGG-M / VGG-S (Chatfield et al., 2014).

VGG-16 follows `torchvision.models.vgg16`: thirteen 3x3 convs named conv1_1 ..
conv5_3 (each followed by relu{b}_{i}), max-pools pool1..pool5, an adaptive
average pool to 7x7, then fc6, relu6, fc7, relu7, logits (dropout after relu6
and relu7, as torchvision).

VGG-M and VGG-S follow Table 1 of "Return of the Devil in the Details"
(Chatfield et al., BMVC 2014) and the released Caffe models: conv1 96x7x7/2,
LRN (size 5, alpha 5e-4, beta 0.75, k 2), 3x3 max-pools in Caffe's ceil mode,
512-channel conv3..conv5 and 4096-wide fc6/fc7. VGG-M: conv2 256x5x5/2 pad 1,
LRN after conv1 and conv2, all pools 3x3/2. VGG-S: conv2 256x5x5/1 pad 1, LRN
after conv1 only (the paper's table has none after conv2), pool1 3x3/3, pool2
2x2/2, pool5 3x3/3. At 224 px both give pool5 [B,6,6,512], the Caffe fc6 input.
"""

from typing import NamedTuple

import flax.linen as nn
import jax

from interp.nets._layers import adaptive_avg_pool, flatten, local_response_norm, max_pool
from interp.nets._tap import tap
from interp.ops import relu

# Output channels of the convs of each VGG-16 block; a 2x2/2 max-pool ends each.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class ConvSpec(NamedTuple):
    """One conv of a Chatfield et al. net and what follows its ReLU."""

    width: int
    kernel: int
    stride: int
    pad: int
    lrn: bool  # LRN (norm{i}) after relu{i}
    pool: tuple[int, int] | None  # (window, stride) of pool{i}, ceil mode


VGG_M_CONVS = (
    ConvSpec(96, 7, 2, 0, True, (3, 2)),
    ConvSpec(256, 5, 2, 1, True, (3, 2)),
    ConvSpec(512, 3, 1, 1, False, None),
    ConvSpec(512, 3, 1, 1, False, None),
    ConvSpec(512, 3, 1, 1, False, (3, 2)),
)
VGG_S_CONVS = (
    ConvSpec(96, 7, 2, 0, True, (3, 3)),
    ConvSpec(256, 5, 1, 1, False, (2, 2)),
    ConvSpec(512, 3, 1, 1, False, None),
    ConvSpec(512, 3, 1, 1, False, None),
    ConvSpec(512, 3, 1, 1, False, (3, 3)),
)


def _classifier(x: jax.Array, num_classes: int, dropout: float, train: bool) -> jax.Array:
    """fc6, relu6, [dropout], fc7, relu7, [dropout], logits on flat features [B, D].

    Must run inside a compact method: it creates the Dense submodules there.
    """
    for i in (6, 7):
        x = tap(nn.Dense(4096, name=f"fc{i}")(x), f"fc{i}")
        x = tap(relu(x), f"relu{i}")
        x = nn.Dropout(dropout, deterministic=not train)(x)
    return tap(nn.Dense(num_classes, name="logits")(x), "logits")


class VGG16(nn.Module):
    """VGG-16 (configuration D) as `torchvision.models.vgg16`, without BatchNorm.

    Attributes:
      num_classes: number of output logits.
      dropout: dropout rate after relu6 and relu7 (rng name 'dropout').
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
        """Maps images [B, H, W, 3] to logits [B, num_classes]; 224 px gives pool5 7x7."""
        for b, widths in enumerate(VGG16_BLOCKS, start=1):
            for i, width in enumerate(widths, start=1):
                name = f"conv{b}_{i}"
                x = tap(nn.Conv(width, (3, 3), padding=1, name=name)(x), name)
                x = tap(relu(x), f"relu{b}_{i}")
            if b == len(VGG16_BLOCKS) and self.after_last_conv is not None:
                x = self.after_last_conv(x)
            if b == len(VGG16_BLOCKS) and self.features_only:
                return x
            x = tap(max_pool(x, 2, 2), f"pool{b}")
        x = flatten(adaptive_avg_pool(x, (7, 7)))
        return _classifier(x, self.num_classes, self.dropout, train)


class ChatfieldCNN(nn.Module):
    """The VGG-M / VGG-S family of Chatfield et al. (2014); see `VGGM`, `VGGS`.

    Attributes:
      convs: the five conv layers, in order.
      num_classes: number of output logits.
      dropout: dropout rate after relu6 and relu7 (rng name 'dropout').
      after_last_conv: a module applied to the last conv layer's ReLU output
        (before any pool), e.g. the interpretable conv layer of Zhang et al.
        2018 (`interp.layers.InterpretableConv`); its output width must be the
        last conv's, so the head is unchanged.
      features_only: return the last conv layer's ReLU output [B, h, w, C]
        (after `after_last_conv`, before any pool) instead of the logits: the
        network as a backbone for another head (`interp.layers.released_icnn`);
        the head's parameters are then not created.
    """

    convs: tuple[ConvSpec, ...]
    input_spec = (None, None, 3)  # per example: NHWC of any size, 3 channels
    num_classes: int = 1000
    dropout: float = 0.5
    after_last_conv: nn.Module | None = None
    features_only: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Maps images [B, H, W, 3] to logits [B, num_classes]; 224 px gives pool5 6x6."""
        for i, spec in enumerate(self.convs, start=1):
            conv = nn.Conv(spec.width, (spec.kernel,) * 2, spec.stride, spec.pad, name=f"conv{i}")
            x = tap(conv(x), f"conv{i}")
            x = tap(relu(x), f"relu{i}")
            if i == len(self.convs) and self.after_last_conv is not None:
                x = self.after_last_conv(x)
            if i == len(self.convs) and self.features_only:
                return x
            if spec.lrn:
                x = tap(local_response_norm(x, size=5, alpha=5e-4, beta=0.75, k=2.0), f"norm{i}")
            if spec.pool is not None:
                x = tap(max_pool(x, *spec.pool, ceil_mode=True), f"pool{i}")
        x = flatten(adaptive_avg_pool(x, (6, 6)))
        return _classifier(x, self.num_classes, self.dropout, train)


def VGGM(num_classes: int = 1000, dropout: float = 0.5, **kw) -> ChatfieldCNN:  # noqa: N802
    """VGG-M ("CNN-M") of Chatfield et al. (2014); paper input 224."""
    return ChatfieldCNN(VGG_M_CONVS, num_classes=num_classes, dropout=dropout, **kw)


def VGGS(num_classes: int = 1000, dropout: float = 0.5, **kw) -> ChatfieldCNN:  # noqa: N802
    """VGG-S ("CNN-S") of Chatfield et al. (2014); paper input 224."""
    return ChatfieldCNN(VGG_S_CONVS, num_classes=num_classes, dropout=dropout, **kw)
