"""Decision trees of the demo SmallCNN's relu3 and of three released interpretable SmallCNNs (the README's numbers)."""

from experiments.configs import DecisionTreeConfig


def get_config() -> DecisionTreeConfig:
    return DecisionTreeConfig()
