"""Choosing the landmarks an experiment evaluates, by 1-based part id.

    batch = select_landmarks(cub.batch(indices, 224), CUB_ICNN_PARTS)
    batch["landmarks"].shape  # [B, 3, 2]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# CUB-200-2011 parts/parts.txt ids 1 'back', 6 'forehead', 14 'tail': the bird's
# back, head and tail, the landmarks of the interpretable-CNN paper's location
# instability on CUB (Zhang et al., CVPR 2018).
CUB_ICNN_PARTS = (1, 6, 14)


def select_landmarks(example: Mapping[str, Any], part_ids: Sequence[int]) -> dict[str, Any]:
    """Keeps only some landmarks of an example or a batch.

    Args:
        example: a dict with 'landmarks' [..., P, 2] and 'landmark_visible'
            [..., P] (one example or a batch; numpy or jax arrays).
        part_ids: 1-based part ids in 1..P, in the order wanted (as in CUB's
            parts.txt; for `VOCPart`, 1 + index into `part_names`).

    Returns:
        A new dict, the other keys unchanged, with 'landmarks' [..., K, 2] and
        'landmark_visible' [..., K] for the K ids given.
    """
    missing = [key for key in ("landmarks", "landmark_visible") if key not in example]
    if missing:
        raise KeyError(f"select_landmarks: keys {missing} missing; expected 'landmarks' [..., P, 2] and "
                       f"'landmark_visible' [..., P], got keys {sorted(example)}")
    landmarks, visible = example["landmarks"], example["landmark_visible"]
    num_parts = landmarks.shape[-2]
    if visible.shape[-1] != num_parts:
        raise ValueError(f"select_landmarks: 'landmarks' has {num_parts} parts {landmarks.shape}, "
                         f"'landmark_visible' {visible.shape[-1]} {visible.shape}")
    ids = [int(i) for i in part_ids]
    bad = [i for i in ids if not 1 <= i <= num_parts]
    if bad or not ids:
        raise ValueError(f"select_landmarks: part ids {bad or '(none given)'}; expected 1-based ids "
                         f"in 1..{num_parts}")
    rows = np.array(ids) - 1
    out = dict(example)
    out["landmarks"] = landmarks[..., rows, :]
    out["landmark_visible"] = visible[..., rows]
    return out
