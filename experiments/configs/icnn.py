"""The released interpretable SmallCNN against its ordinary twin on SynthParts: three seeds, the multi-category
task and two one-category ones, each on object crops and on whole scenes, and the injected gradient's constant
swept on the first multi-category task."""

from experiments.configs import IcnnConfig


def get_config() -> IcnnConfig:
    return IcnnConfig()
