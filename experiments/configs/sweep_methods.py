"""Every attribution method scored on the demo's network over five seeds (one vmapped call per method)."""

from interp.sweep import ATTRIBUTION_METHODS, Attribution, Sweep


def get_config() -> Sweep:
    return Sweep(Attribution(images=64), models=("runs/demo",), methods=ATTRIBUTION_METHODS, seeds=(0, 1, 2, 3, 4))
