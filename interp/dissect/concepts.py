"""Concept data for dissection: SynthParts and Broden behind one interface.

A concept source gives images with, per image, the binary masks of the
concepts it shows, in a compact form that both datasets fill:

    src.concepts                      # ConceptSet: names, categories, category of each
    len(src)
    src.batch(indices) -> ConceptBatch(images [B, H, W, 3] float32 in [0, 1],
                                       ids [B, D] int32 concept indices,
                                       masks [B, D, sh, sw] bool)

Entry (b, d) says "image b shows concept ids[b, d] on masks[b, d]". An
image-level label (a scene) is a mask of ones, which is how NetDissect counts
it: every pixel of the image carries the label. Entries with an empty mask are
padding and count for nothing, so `D` can be fixed per dataset (SynthParts:
every concept, dense) or per batch (Broden: the concepts present, padded).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp.data import Broden, SynthParts, resize_image, resize_nearest
from interp.data.synthparts import CONCEPT_CATEGORIES


@dataclasses.dataclass(frozen=True)
class ConceptSet:
    """The concept table: one global index per concept.

    Attributes:
      names: [C] concept names; index c is concept c.
      categories: category names, e.g. ('object', 'part', 'color', ...).
      category_of: [C] int, the index into `categories` of each concept's
        primary category (the one it is scored in), or -1 for an index that is
        no concept (Broden's label 0, "unlabeled").
    """

    names: tuple[str, ...]
    categories: tuple[str, ...]
    category_of: tuple[int, ...]

    def __post_init__(self):
        if len(self.names) != len(self.category_of):
            raise ValueError(f"category_of: expected one entry per name ({len(self.names)}), "
                             f"got {len(self.category_of)}")
        bad = [c for c in self.category_of if not -1 <= c < len(self.categories)]
        if bad:
            raise ValueError(f"category_of: expected indices in [-1, {len(self.categories)}), got {bad[:5]}")

    def __len__(self) -> int:
        return len(self.names)

    def label(self, concept: int) -> str:
        """'category/name' of a concept (the name alone for an index that is no concept)."""
        category = self.category_of[concept]
        return self.names[concept] if category < 0 else f"{self.categories[category]}/{self.names[concept]}"


class ConceptBatch(NamedTuple):
    """Images with the masks of the concepts they show (see the module docstring)."""

    images: jax.Array
    ids: jax.Array
    masks: jax.Array


class SynthPartsConcepts:
    """SynthParts as concept data: object, part, color and texture masks, scene labels.

    Concepts are `dataset.concepts()` in order (global index = position).
    Object concept c covers the object's pixels when the image's class is c;
    a part, color or texture concept covers the pixels painted with it; the
    scene (background type) is an image-level label. The segmentation has the
    image's resolution.

    Args:
      dataset: the SynthParts configuration.
      num_examples: images to dissect, indices 0 .. num_examples - 1
        (default: `len(dataset)`).
      first: dataset index of the first image (to dissect held-out images).
    """

    def __init__(self, dataset: SynthParts, num_examples: int | None = None, first: int = 0):
        self.dataset = dataset
        self.num_examples = len(dataset) if num_examples is None else int(num_examples)
        if self.num_examples < 1:
            raise ValueError(f"num_examples: expected a positive int, got {num_examples}")
        self.first = int(first)
        table = dataset.concepts()
        self.concepts = ConceptSet(
            names=tuple(name for _, name in table),
            categories=CONCEPT_CATEGORIES,
            category_of=tuple(CONCEPT_CATEGORIES.index(category) for category, _ in table),
        )
        self.image_size = (dataset.image_size, dataset.image_size)
        self.seg_size = self.image_size

    def __len__(self) -> int:
        return self.num_examples

    def batch(self, indices: Sequence[int] | jax.Array) -> ConceptBatch:
        indices = jnp.asarray(indices, jnp.int32)
        return _synthparts_batch(self.dataset, indices + self.first)


@functools.partial(jax.jit, static_argnames="dataset")
def _synthparts_batch(dataset: SynthParts, indices: jax.Array) -> ConceptBatch:
    example = dataset.batch(indices)
    masks = _synthparts_masks(example, dataset)
    ids = jnp.broadcast_to(jnp.arange(masks.shape[1], dtype=jnp.int32), masks.shape[:2])
    return ConceptBatch(example["image"], ids, masks)


def _synthparts_masks(example: dict[str, jax.Array], dataset: SynthParts) -> jax.Array:
    """bool [B, C, H, W]: every concept of `dataset.concepts()`, dense."""
    sizes = {"object": dataset.num_classes, "part": len(dataset.part_names),
             "color": len(dataset.color_names), "texture": len(dataset.texture_names),
             "scene": len(dataset.scene_names)}
    height, width = example["object_mask"].shape[1:]

    def one_hot(values, count):  # [B, H, W] -> [B, count, H, W]
        return values[:, None] == jnp.arange(count)[None, :, None, None]

    objects = one_hot(jnp.where(example["object_mask"], example["label"][:, None, None], -1), sizes["object"])
    parts = one_hot(example["part_mask"] - 1, sizes["part"])
    colors = one_hot(example["color"] - 1, sizes["color"])
    textures = one_hot(example["texture"] - 1, sizes["texture"])
    scenes = jnp.broadcast_to(
        (example["scene"][:, None] == jnp.arange(sizes["scene"])[None, :])[:, :, None, None],
        (len(example["scene"]), sizes["scene"], height, width))
    return jnp.concatenate([objects, parts, colors, textures, scenes], axis=1)


class PartMaskConcepts:
    """Any batch source with an integer 'part_mask' as part concepts (SynthParts' object crops, VOC-Part).

    Concept k is `part_names[k]`, on the pixels where `part_mask == k + 1`
    (0 is no part); all concepts are in the category "part".

    Args:
      data: a batch source whose batches hold 'image' [B, H, W, 3] and
        'part_mask' int [B, H, W].
      part_names: the names of part ids 1, 2, ...
      num_examples: images to dissect, 0 .. num_examples - 1 (default: all).
    """

    def __init__(self, data, part_names: Sequence[str], num_examples: int | None = None):
        self.data = data
        self.num_examples = len(data) if num_examples is None else int(num_examples)
        if not 1 <= self.num_examples <= len(data):
            raise ValueError(f"num_examples: expected 1 ... {len(data)} (the source's size), got {num_examples}")
        self.concepts = ConceptSet(names=tuple(part_names), categories=("part",), category_of=(0,) * len(part_names))
        sample = data.batch(np.arange(1))
        self.image_size = tuple(np.shape(sample["image"])[1:3])
        self.seg_size = tuple(np.shape(sample["part_mask"])[1:3])

    def __len__(self) -> int:
        return self.num_examples

    def batch(self, indices: Sequence[int]) -> ConceptBatch:
        batch = self.data.batch(np.asarray(indices))
        parts = np.asarray(batch["part_mask"])
        count = len(self.concepts)
        masks = parts[:, None] == np.arange(1, count + 1)[None, :, None, None]
        ids = np.broadcast_to(np.arange(count, dtype=np.int32), masks.shape[:2])
        return ConceptBatch(np.asarray(batch["image"], np.float32), ids, masks)


class BrodenConcepts:
    """A Broden folder as concept data.

    Concept index = Broden's global label number (index 0, "unlabeled", is no
    concept). A concept is scored in its primary category, the one where its
    coverage (c_<category>.csv) is largest, as NetDissect does (ties: the
    larger count in label.csv); it counts wherever it is labeled, in a pixel map of any category or as an
    image-level label.

    Args:
      broden: the reader (its `categories` are the ones dissected).
      image_size: side of the square images given to the network (default:
        the first image's height); images are resized bilinearly.
      seg_size: side of the square segmentation the activations are compared
        on (default: the first image's label-map height, 112 for broden1_224);
        label maps are resized nearest-neighbor.
    """

    def __init__(self, broden: Broden, image_size: int | None = None, seg_size: int | None = None):
        if len(broden) == 0:
            raise ValueError("broden: the selected split has no images")
        self.broden = broden
        # Primary category: the largest coverage; ties go to the larger count in label.csv.
        rank: dict[int, dict[str, tuple[float, int]]] = {}
        for category in broden.categories:
            for code in broden.category_codes.get(category, ()):
                counts = broden.concepts[code.number].categories if code.number in broden.concepts else {}
                rank.setdefault(code.number, {})[category] = (code.coverage, counts.get(category, 0))
        category_of = []
        for number in range(len(broden.concept_names)):
            ranked = rank.get(number)
            category_of.append(-1 if number == 0 or not ranked
                               else broden.categories.index(max(ranked, key=ranked.get)))
        self.concepts = ConceptSet(names=broden.concept_names, categories=broden.categories,
                                   category_of=tuple(category_of))
        first = broden._rows[0]
        self._image_side = int(image_size or first.size[0])
        self._seg_side = int(seg_size or first.seg_size[0])
        self.image_size = (self._image_side, self._image_side)
        self.seg_size = (self._seg_side, self._seg_side)

    def __len__(self) -> int:
        return len(self.broden)

    def batch(self, indices: Sequence[int]) -> ConceptBatch:
        images, ids, masks = [], [], []
        for index in np.asarray(indices).tolist():
            example = self.broden[index]
            images.append(resize_image(example["image"], self._image_side))
            concept_ids, concept_masks = self._concept_masks(example)
            ids.append(concept_ids)
            masks.append(concept_masks)
        # Pad D to a multiple of 8 so that few distinct shapes reach the compiled tally.
        width = max(8, -(-max(len(i) for i in ids) // 8) * 8)
        padded_ids = np.zeros((len(ids), width), np.int32)
        padded_masks = np.zeros((len(ids), width, *self.seg_size), bool)
        for row, (concept_ids, concept_masks) in enumerate(zip(ids, masks)):
            padded_ids[row, :len(concept_ids)] = concept_ids
            padded_masks[row, :len(concept_ids)] = concept_masks
        return ConceptBatch(np.stack(images), padded_ids, padded_masks)

    def _concept_masks(self, example: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(ids [D], masks bool [D, sh, sw]) of the concepts one example shows."""
        maps = [resize_nearest(example[f"seg/{c}"], self._seg_side) for c in self.broden.categories]
        maps = np.concatenate(maps) if maps else np.zeros((0, *self.seg_size), np.int32)
        scalars = {int(v) for c in self.broden.categories for v in example[f"image_labels/{c}"] if v > 0}
        pixel_ids = set(np.unique(maps).tolist()) - {0}
        ids = np.array(sorted(pixel_ids | scalars), np.int32)
        masks = (maps[None] == ids[:, None, None, None]).any(axis=1)
        masks[np.isin(ids, list(scalars))] = True
        return ids, masks
