"""Every unit of conv3 and conv4 of the demo's network rendered (192 renders, one call per 64 units).

Pre-activation layers, as Lucid renders them: a unit behind a ReLU that is off everywhere on the start
image gets no gradient and stays grey.
"""

from interp.sweep import Render, Sweep


def get_config() -> Sweep:
    return Sweep(Render(steps=128, image_size=64), models=("runs/demo",), layers=("conv3", "conv4"), seeds=(0,))
