"""Explanatory graphs of the demo SmallCNN's relu3 and relu4 over three seeds (the README's numbers)."""

from experiments.configs import ExplanatoryGraphConfig


def get_config() -> ExplanatoryGraphConfig:
    return ExplanatoryGraphConfig()
