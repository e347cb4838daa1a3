"""Experiment configs: each module has `get_config()` returning its config object."""
