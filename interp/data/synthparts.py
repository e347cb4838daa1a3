"""SynthParts: an embedded, procedurally generated dataset with ground truth.

Each image shows one object of a category built from named parts (head, torso,
leg, wheel, ...). Every part is a primitive shape with a color and a texture;
the object has a random pose (position, scale, small rotation, horizontal flip)
and sits on a background of one of several types, among small distractor
shapes. The class is decided by the part layout alone: colors and textures are
drawn independently of the class, except through the optional bias knob.

Example `i` is a pure function of `(seed, i)`: its PRNG key is
`jax.random.fold_in(jax.random.key(seed), i)`, so it does not depend on the
batch it is generated in, and it is the same scene at every `image_size`
(shapes live in normalized coordinates).

Concepts (for network dissection) follow Broden's categories; `concepts()`
lists them with one global index each. Per-pixel and per-image labels map into
that table as follows (offsets from `concept_offsets()`):

- object:  `offsets["object"] + label` on pixels where `object_mask`;
- part:    `offsets["part"] + part_mask - 1` where `part_mask > 0`;
- color:   `offsets["color"] + color - 1` where `color > 0`;
- texture: `offsets["texture"] + texture - 1` where `texture > 0`;
- scene:   `offsets["scene"] + scene`, for the whole image.

`color` and `texture` are nonzero exactly on object pixels: they name the
color and texture a part was painted with (a textured part's darker or lighter
stripes/dots keep the part's color name, and a red tint does not change it).
Background and distractor pixels carry no color or texture label.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from interp.data import _synth_render as R
from interp.data import _synth_sample as S
from interp.data import _synth_templates as T
from interp.data.stream import check_indices

MIN_SIZE, MAX_SIZE = 32, 224
BIAS_ATTRIBUTES = ("red_tint", "striped_background")
CONCEPT_CATEGORIES = ("object", "part", "color", "texture", "scene")


@dataclasses.dataclass(frozen=True)
class SynthParts:
    """Configuration of a SynthParts dataset; hashable, so usable as a static jit argument.

    Attributes:
      seed: dataset seed; example `i` is drawn from `fold_in(key(seed), i)`.
      image_size: side of the square images, in [32, 224].
      num_classes: use the first `num_classes` of `T.CLASS_NAMES`, in [2, 10].
      clutter: in [0, 1]; expected number of distractor shapes is
        `4 * clutter` (up to 8 on the "shapes" background).
      num_examples: nominal size returned by `len()`. Any int32 index gives a
        valid example; indices at or beyond `num_examples` are simply fresh
        examples (e.g. a held-out split).
      bias: in [0, 1], how strongly `bias_attribute` co-occurs with
        `bias_class`: P(attr | bias_class) - P(attr | other class) == bias.
        With probability `bias` the attribute is set to [label == bias_class],
        otherwise it is drawn at its base rate (0.2 for "red_tint", 1/5 for
        "striped_background").
      bias_class: the class index the bias attribute is tied to.
      bias_attribute: "red_tint" (the whole image tinted red) or
        "striped_background" (the scene type is "striped").
    """

    seed: int = 0
    image_size: int = 64
    num_classes: int = 6
    clutter: float = 0.5
    num_examples: int = 100_000
    bias: float = 0.0
    bias_class: int = 0
    bias_attribute: str = "red_tint"

    def __post_init__(self):
        _check_config(self)

    def __len__(self) -> int:
        return self.num_examples

    @property
    def class_names(self) -> tuple[str, ...]:
        return T.CLASS_NAMES[: self.num_classes]

    @property
    def part_names(self) -> tuple[str, ...]:
        """All part names (independent of `num_classes`); part id k is `part_names[k - 1]`."""
        return T.PART_NAMES

    def class_parts(self) -> tuple[tuple[str, ...], ...]:
        """Per class, the names of the parts its layout is built from (what decides the class)."""
        return tuple(tuple(dict.fromkeys(p.name for p in T.TEMPLATES[name])) for name in self.class_names)

    @property
    def color_names(self) -> tuple[str, ...]:
        return T.COLOR_NAMES

    @property
    def texture_names(self) -> tuple[str, ...]:
        return T.TEXTURE_NAMES

    @property
    def scene_names(self) -> tuple[str, ...]:
        return T.SCENE_NAMES

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return R.ATTRIBUTE_NAMES

    def concepts(self) -> tuple[tuple[str, str], ...]:
        """Broden-style concept table: (category, name) pairs; the position is the global index."""
        names = (self.class_names, self.part_names, self.color_names, self.texture_names, self.scene_names)
        return tuple((cat, n) for cat, group in zip(CONCEPT_CATEGORIES, names) for n in group)

    def concept_offsets(self) -> dict[str, int]:
        """Global index of each category's first concept in `concepts()`."""
        sizes = (self.num_classes, len(T.PART_NAMES), len(T.COLOR_NAMES), len(T.TEXTURE_NAMES), len(T.SCENE_NAMES))
        return dict(zip(CONCEPT_CATEGORIES, np.cumsum((0,) + sizes[:-1]).tolist()))

    def batch(self, indices: jax.Array) -> dict[str, jax.Array]:
        """Generates the examples with the given indices (pure, jit-compiled).

        Args:
          indices: int32 [B] example indices.

        Returns:
          A dict of arrays, with P = len(part_names), A = len(attribute_names):
            image: float32 [B, H, W, 3] in [0, 1].
            label: int32 [B] class index.
            object_mask: bool [B, H, W] pixels of the object.
            part_mask: int32 [B, H, W] 0 off the object, else the global part id
              k in 1..P (`part_names[k - 1]`); `part_mask > 0 == object_mask`.
            landmarks: float32 [B, P, 2] (row, col) part centers in pixel units
              (pixel (r, c) has its center at (r, c)); rounded, a visible
              landmark always lands on a pixel of its part. Meaningless where
              not visible (0 for parts the class lacks).
            landmark_visible: bool [B, P] the class has the part and it shows.
            color, texture: int32 [B, H, W] 1 + index into `color_names` /
              `texture_names` on object pixels, 0 elsewhere.
            scene: int32 [B] background type, index into `scene_names`.
            attributes: bool [B, A] in `attribute_names` order.

        Raises:
          ValueError: `indices` are not integers (a float index would be
            truncated to another example).
        """
        # Only the fields that change shapes or code are static, so sweeping
        # seeds, clutter or bias reuses one compiled program.
        return _generate(
            jnp.asarray(check_indices(indices), jnp.int32),
            self.seed,
            self.clutter,
            self.bias,
            self.bias_class,
            image_size=self.image_size,
            num_classes=self.num_classes,
            bias_attribute=self.bias_attribute,
        )

    def example(self, i: int) -> dict[str, np.ndarray]:
        """Example `i` as a dict of numpy arrays (the `batch` keys, without the batch axis)."""
        return {k: np.asarray(v[0]) for k, v in self.batch(jnp.array([i], jnp.int32)).items()}


@functools.partial(jax.jit, static_argnames=("image_size", "num_classes", "bias_attribute"))
def _generate(indices, seed, clutter, bias, bias_class, *, image_size, num_classes, bias_attribute):
    """`SynthParts.batch` with the non-structural fields traced."""
    dataset_key = jax.random.key(seed)
    tint, stripe = (bias if name == bias_attribute else 0.0 for name in BIAS_ATTRIBUTES)

    def one(index):
        scene = S.sample_scene(
            jax.random.fold_in(dataset_key, index),
            num_classes=num_classes,
            clutter=clutter,
            bias_class=bias_class,
            tint_strength=tint,
            stripe_strength=stripe,
        )
        return R.render(scene, image_size, T.template_tables())

    return jax.vmap(one)(indices)


def _check_config(ds: SynthParts) -> None:
    """Raises ValueError naming the first bad field of `ds` and what was expected."""
    n = len(T.CLASS_NAMES)
    checks = [
        ("seed", 0 <= ds.seed < 2**31, "an int in [0, 2**31)"),
        ("image_size", MIN_SIZE <= ds.image_size <= MAX_SIZE, f"an int in [{MIN_SIZE}, {MAX_SIZE}]"),
        ("num_classes", 2 <= ds.num_classes <= n, f"an int in [2, {n}] (classes: {', '.join(T.CLASS_NAMES)})"),
        ("clutter", 0.0 <= ds.clutter <= 1.0, "a float in [0, 1]"),
        ("num_examples", ds.num_examples >= 1, "a positive int"),
        ("bias", 0.0 <= ds.bias <= 1.0, "a float in [0, 1]"),
        ("bias_class", 0 <= ds.bias_class < ds.num_classes, f"an int in [0, num_classes={ds.num_classes})"),
        ("bias_attribute", ds.bias_attribute in BIAS_ATTRIBUTES, f"one of {BIAS_ATTRIBUTES}"),
    ]
    for name, ok, expected in checks:
        if not ok:
            raise ValueError(f"SynthParts: {name}={getattr(ds, name)!r}; expected {expected}")
