"""Argument checks shared by the method families, with errors that name the argument."""

from typing import Any

import numpy as np


def check_positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """Returns `value` if it is an int >= 1 (or None when allowed), else raises a `ValueError`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)
