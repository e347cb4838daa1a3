"""Every unit of relu3 and relu4 of the demo's network rendered (192 renders, one call per 64 units)."""

from interp.sweep import Render, Sweep


def get_config() -> Sweep:
    return Sweep(Render(steps=128, image_size=64), models=("runs/demo",), layers=("relu3", "relu4"), seeds=(0,))
