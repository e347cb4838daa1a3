"""Every attribution method on 256 held-out SynthParts images (the README's numbers)."""

from experiments.configs import AttributionConfig


def get_config() -> AttributionConfig:
    return AttributionConfig(images=256, sanity_images=32)
