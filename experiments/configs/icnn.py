"""Interpretable vs ordinary SmallCNN on SynthParts: the multi-category task and two single-category ones."""

from experiments.configs import IcnnConfig


def get_config() -> IcnnConfig:
    return IcnnConfig(model="small_cnn", steps=1500, single_steps=800, single_classes=("quadruped", "car"))
