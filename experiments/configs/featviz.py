"""The 8 most active channels per layer, 256 render steps (the demo's figures and the README's ratios)."""

from experiments.configs import FeatvizConfig


def get_config() -> FeatvizConfig:
    return FeatvizConfig(channels=8, steps=256)
