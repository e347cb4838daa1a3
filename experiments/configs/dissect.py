"""Network Dissection of relu1-relu4 on 1,024 held-out SynthParts images (the README's numbers)."""

from experiments.configs import DissectConfig


def get_config() -> DissectConfig:
    return DissectConfig(images=1024, layers=("relu1", "relu2", "relu3", "relu4"))
