"""Up-convolutional inversion: 1,000 decoder steps per layer, trained and random-init networks."""

from experiments.configs import InversionConfig


def get_config() -> InversionConfig:
    return InversionConfig(steps=1000, batch_size=32)
