"""Every checkpoint of the demo's run dissected at relu1-relu4 (one pass per checkpoint, every layer in it)."""

from interp.sweep import Dissect, Sweep


def get_config() -> Sweep:
    return Sweep(Dissect(images=512), models=("runs/demo@all",), layers=("relu1", "relu2", "relu3", "relu4"))
