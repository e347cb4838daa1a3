"""Static vocabulary of SynthParts: class templates, parts, colors, textures, scenes.

Everything here is plain numpy and Python; the JAX renderer turns it into
device constants. Templates live in an *object frame*: x to the right, y down,
the object roughly filling the box [-1, 1]^2. Pose (position, scale, rotation,
flip) maps that frame onto the image, so templates never mention pixels and
rendering is resolution independent.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Shape kinds, evaluated as implicit functions in a part's local frame where the
# shape's half-extents are 1 (see `_synth_render.inside_shape`).
ELLIPSE, RECT, TRIANGLE, ROUNDED = 0, 1, 2, 3

# Broden's eleven color terms, with the RGB a part of that color is painted. The names are
# Broden's own concept labels, spelled as Broden spells them ("grey"), so that SynthParts and
# Broden concepts match by name; likewise the texture "chequered" below is Broden's (DTD's) label.
COLOR_NAMES = (
    "black", "blue", "brown", "green", "grey", "orange",
    "pink", "purple", "red", "white", "yellow",
)
COLOR_RGB = np.array(
    [
        [0.08, 0.08, 0.08], [0.15, 0.30, 0.85], [0.50, 0.30, 0.12],
        [0.10, 0.65, 0.15], [0.55, 0.55, 0.55], [1.00, 0.55, 0.05],
        [1.00, 0.55, 0.75], [0.55, 0.15, 0.70], [0.85, 0.08, 0.08],
        [0.97, 0.97, 0.97], [0.98, 0.90, 0.10],
    ],
    dtype=np.float32,
)
# DTD/Broden texture names, plus "plain" for an untextured part.
TEXTURE_NAMES = ("plain", "striped", "dotted", "chequered")
# Background types, used as Broden's "scene" category.
SCENE_NAMES = ("plain", "gradient", "noise", "striped", "shapes")
STRIPED_SCENE = SCENE_NAMES.index("striped")
SHAPES_SCENE = SCENE_NAMES.index("shapes")


class Part(NamedTuple):
    """One primitive of a class template, in painter's order (later on top).

    Attributes:
      name: global part name; several primitives may share one (four legs).
      kind: ELLIPSE, RECT, TRIANGLE or ROUNDED.
      center: (x, y) of the primitive in the object frame.
      half: (half-width, half-height) in the object frame.
      angle: rotation in degrees (clockwise on screen, since y points down).
        A TRIANGLE at angle 0 points up (apex at -y).
    """

    name: str
    kind: int
    center: tuple[float, float]
    half: tuple[float, float]
    angle: float = 0.0


def _petals(n: int, cx: float, cy: float, radius: float) -> list[Part]:
    """`n` elliptic petals arranged radially around (cx, cy)."""
    out = []
    for k in range(n):
        a = 2.0 * np.pi * k / n
        out.append(Part("petal", ELLIPSE, (cx + radius * np.cos(a), cy + radius * np.sin(a)),
                        (0.2, 0.1), float(np.degrees(a))))
    return out


# Classes are ordered so that `num_classes=k` takes the k most distinct
# silhouettes first; the class is decided by the part layout alone.
TEMPLATES: dict[str, list[Part]] = {
    "quadruped": [
        Part("tail", RECT, (-0.82, -0.28), (0.25, 0.05), -35.0),
        Part("leg", RECT, (-0.55, 0.45), (0.07, 0.32)),
        Part("leg", RECT, (-0.30, 0.45), (0.07, 0.32)),
        Part("leg", RECT, (0.30, 0.45), (0.07, 0.32)),
        Part("leg", RECT, (0.55, 0.45), (0.07, 0.32)),
        Part("torso", ELLIPSE, (0.0, 0.0), (0.72, 0.3)),
        Part("ear", TRIANGLE, (0.66, -0.72), (0.1, 0.14)),
        Part("head", ELLIPSE, (0.72, -0.45), (0.25, 0.22)),
    ],
    "bird": [
        Part("tail", TRIANGLE, (-0.7, -0.1), (0.2, 0.3), -70.0),
        Part("leg", RECT, (-0.1, 0.68), (0.035, 0.25)),
        Part("leg", RECT, (0.15, 0.68), (0.035, 0.25)),
        Part("torso", ELLIPSE, (0.0, 0.1), (0.55, 0.4)),
        Part("wing", ELLIPSE, (-0.12, 0.05), (0.38, 0.18), 12.0),
        Part("head", ELLIPSE, (0.5, -0.45), (0.22, 0.22)),
        Part("beak", TRIANGLE, (0.82, -0.45), (0.1, 0.14), 90.0),
    ],
    "car": [
        Part("cabin", ROUNDED, (-0.05, -0.3), (0.5, 0.24)),
        Part("window", RECT, (-0.05, -0.3), (0.36, 0.12)),
        Part("body", ROUNDED, (0.0, 0.12), (0.92, 0.24)),
        Part("wheel", ELLIPSE, (-0.55, 0.4), (0.2, 0.2)),
        Part("wheel", ELLIPSE, (0.55, 0.4), (0.2, 0.2)),
    ],
    "house": [
        Part("body", RECT, (0.0, 0.35), (0.68, 0.55)),
        Part("roof", TRIANGLE, (0.0, -0.5), (0.88, 0.42)),
        Part("door", RECT, (0.3, 0.6), (0.14, 0.3)),
        Part("window", RECT, (-0.35, 0.2), (0.16, 0.14)),
    ],
    "tree": [
        Part("trunk", RECT, (0.0, 0.5), (0.12, 0.5)),
        Part("foliage", ELLIPSE, (-0.35, -0.1), (0.38, 0.3)),
        Part("foliage", ELLIPSE, (0.35, -0.1), (0.38, 0.3)),
        Part("foliage", ELLIPSE, (0.0, -0.38), (0.5, 0.5)),
    ],
    "person": [
        Part("leg", RECT, (-0.15, 0.6), (0.09, 0.35)),
        Part("leg", RECT, (0.15, 0.6), (0.09, 0.35)),
        Part("arm", RECT, (-0.42, -0.05), (0.07, 0.35), 20.0),
        Part("arm", RECT, (0.42, -0.05), (0.07, 0.35), -20.0),
        Part("torso", ROUNDED, (0.0, -0.05), (0.3, 0.4)),
        Part("head", ELLIPSE, (0.0, -0.7), (0.22, 0.22)),
    ],
    "fish": [
        Part("fin", TRIANGLE, (0.05, -0.42), (0.22, 0.22), -20.0),
        Part("tail", TRIANGLE, (-0.72, 0.0), (0.32, 0.3), 90.0),
        Part("torso", ELLIPSE, (0.12, 0.0), (0.68, 0.38)),
        Part("eye", ELLIPSE, (0.55, -0.1), (0.09, 0.09)),
    ],
    "boat": [
        Part("mast", RECT, (0.0, -0.2), (0.04, 0.7)),
        Part("sail", TRIANGLE, (-0.3, -0.2), (0.3, 0.55)),
        Part("sail", TRIANGLE, (0.28, -0.1), (0.2, 0.42)),
        Part("hull", ROUNDED, (0.0, 0.62), (0.9, 0.2)),
    ],
    "airplane": [
        Part("wing", ROUNDED, (0.05, 0.0), (0.2, 0.9)),
        Part("tail", RECT, (-0.8, 0.0), (0.08, 0.35)),
        Part("body", ELLIPSE, (0.0, 0.0), (0.95, 0.16)),
        Part("window", ELLIPSE, (0.7, 0.0), (0.12, 0.08)),
    ],
    "flower": [
        Part("stem", RECT, (0.0, 0.45), (0.05, 0.55)),
        Part("leaf", ELLIPSE, (0.22, 0.5), (0.22, 0.08), -30.0),
        *_petals(6, 0.0, -0.38, 0.33),
        Part("bloom", ELLIPSE, (0.0, -0.38), (0.15, 0.15)),
    ],
}

CLASS_NAMES = tuple(TEMPLATES)
# Global part vocabulary, in order of first appearance; ids do not depend on
# `num_classes`, so a part keeps its id across dataset configurations.
PART_NAMES = tuple(dict.fromkeys(p.name for ps in TEMPLATES.values() for p in ps))
MAX_SLOTS = max(len(ps) for ps in TEMPLATES.values())
MAX_CLASS_PARTS = max(len({p.name for p in ps}) for ps in TEMPLATES.values())


class TemplateTables(NamedTuple):
    """Templates packed as dense arrays for the renderer (padding has part 0).

    Attributes:
      slot_part: int32 [C, S] global part id (1-based) per primitive, 0 = unused.
      slot_kind: int32 [C, S] shape kind.
      slot_geom: float32 [C, S, 5] (cx, cy, half_w, half_h, angle in radians).
      lm_part: int32 [C, L] the distinct part ids of each class, 0 = unused.
      lm_center: float32 [C, L, 2] (x, y) nominal part center in the object frame:
        the mean of the centers of the part's primitives.
    """

    slot_part: np.ndarray
    slot_kind: np.ndarray
    slot_geom: np.ndarray
    lm_part: np.ndarray
    lm_center: np.ndarray


def template_tables() -> TemplateTables:
    """Packs `TEMPLATES` into `TemplateTables` (for all classes)."""
    c, s, n_lm = len(CLASS_NAMES), MAX_SLOTS, MAX_CLASS_PARTS
    slot_part = np.zeros((c, s), np.int32)
    slot_kind = np.zeros((c, s), np.int32)
    slot_geom = np.zeros((c, s, 5), np.float32)
    slot_geom[:, :, 2:4] = 1.0  # unused slots keep a harmless non-zero size
    lm_part = np.zeros((c, n_lm), np.int32)
    lm_center = np.zeros((c, n_lm, 2), np.float32)
    for ci, parts in enumerate(TEMPLATES.values()):
        for si, p in enumerate(parts):
            slot_part[ci, si] = PART_NAMES.index(p.name) + 1
            slot_kind[ci, si] = p.kind
            slot_geom[ci, si] = (*p.center, *p.half, np.radians(p.angle))
        for li, name in enumerate(dict.fromkeys(p.name for p in parts)):
            lm_part[ci, li] = PART_NAMES.index(name) + 1
            lm_center[ci, li] = np.mean([p.center for p in parts if p.name == name], axis=0)
    return TemplateTables(slot_part, slot_kind, slot_geom, lm_part, lm_center)
