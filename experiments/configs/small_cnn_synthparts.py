"""SmallCNN on 64x64 SynthParts: the demo's run (>= 90% validation accuracy on 2 CPU cores)."""

from experiments.configs import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(model="small_cnn", dataset="synthparts", image_size=64, num_classes=6)
