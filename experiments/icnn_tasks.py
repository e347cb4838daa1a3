"""The tasks of the interpretable-CNN comparison: finite training sets composed as the release composes them.

A task is one classifier to fine-tune (a multi-category one, or one category
against the rest) on one framing of the images ("crop": each object cut to its
box and stretched to the image, as the release's `getI.m` does; "whole": the
scene as generated), with the held-out images it is measured on.

Training sets follow `getImdb.m` and `learn_icnn_multiclass.m`: every object
appears twice, as is and mirrored; a one-category set is 75% positives (the
category's objects, mirrored too) and 25% negatives. The release's negatives
are 1,000 unrelated whole images; ours are the other categories' images in the
same framing, so that framing alone cannot tell them apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from experiments import common
from experiments.configs import IcnnConfig
from interp.data import CUB200, BatchSource, VOCPart, object_crops, sized, subset
from interp.data.landmarks import CUB_ICNN_PARTS, select_landmarks

POSITIVE_SHARE = 0.75  # getImdb.m's posRate


@dataclasses.dataclass(frozen=True)
class Task:
    """One classifier of the comparison and what it is measured on.

    Attributes:
      name: "multi", "single_<class>", "cub" or "voc_part".
      framing: "crop" or "whole".
      num_outputs: K logits (1 for a one-category task).
      train: the finite training set: 'image', 'label' (the class, or 1/0 for one category).
      density: float [K] each class's share of `train` (one category: the positives' share).
      epochs, decay_epochs: fine-tuning epochs, and those the learning rate decays over.
      eval: held-out 'image', 'label', 'category' (the true class), 'landmarks', 'landmark_visible'.
      part_names: names of the part ids of 'part_mask' in `eval` (None without part masks).
    """

    name: str
    framing: str
    num_outputs: int
    train: BatchSource
    density: np.ndarray
    epochs: int
    decay_epochs: int
    eval: BatchSource
    part_names: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        return f"{self.name}/{self.framing}"


@dataclasses.dataclass(frozen=True)
class Labelled:
    """A source's 'image' and 'label' (with `positive`: 1 for that class, 0 for the rest), and, with
    `evaluation`, also 'category' (the true class), landmarks, and part masks where the source has them."""

    source: BatchSource
    positive: int | None = None
    evaluation: bool = False
    parts: tuple[int, ...] | None = None  # landmarks kept (1-based, `select_landmarks`)

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, indices) -> dict[str, np.ndarray]:
        batch = self.source.batch(np.asarray(indices))
        category = np.asarray(batch["label"], np.int32)
        label = category if self.positive is None else (category == self.positive).astype(np.int32)
        out = {"image": np.asarray(batch["image"], np.float32), "label": label}
        if self.evaluation:
            if self.parts is not None:
                batch = select_landmarks(batch, self.parts)
            out |= {"category": category, "landmarks": np.asarray(batch["landmarks"], np.float32),
                    "landmark_visible": np.asarray(batch["landmark_visible"], bool)}
            if "part_mask" in batch:
                out["part_mask"] = np.asarray(batch["part_mask"], np.int32)
        return out


def labels_of(source: BatchSource, count: int, batch_size: int = 512) -> np.ndarray:
    """int [count] the 'label' of examples 0 ... count - 1."""
    return np.concatenate([np.asarray(source.batch(np.arange(s, min(s + batch_size, count)))["label"])
                           for s in range(0, count, batch_size)]).astype(np.int64)


def mirrored_set(source: BatchSource, indices: np.ndarray, positive: int | None = None) -> BatchSource:
    """`indices` of `source` twice, as is and mirrored (the release's `getImdb.m`)."""
    indices = np.asarray(indices)
    flips = np.repeat([False, True], len(indices))
    return Labelled(subset(source, np.tile(indices, 2), flips), positive)


def one_category_set(source: BatchSource, labels: np.ndarray, positive: int) -> tuple[BatchSource, float]:
    """75% the category's images (each also mirrored), 25% the others' (not mirrored), in index order."""
    positives = np.flatnonzero(labels == positive)
    negatives = np.flatnonzero(labels != positive)
    count = int(round(2 * len(positives) * (1 - POSITIVE_SHARE) / POSITIVE_SHARE))
    negatives = negatives[:count]
    indices = np.concatenate([positives, positives, negatives])
    flips = np.concatenate([np.zeros(len(positives), bool), np.ones(len(positives), bool),
                            np.zeros(len(negatives), bool)])
    return Labelled(subset(source, indices, flips), positive), 2 * len(positives) / len(indices)


def synthparts_tasks(config: IcnnConfig, seed: int) -> list[Task]:
    """The multi-category task and the one-category tasks of `config.single_classes`, in each framing."""
    stream, held_out = common.synthparts_streams(seed, config.image_size)
    train_labels = labels_of(stream, config.train_images)
    pool = config.eval_images * 8  # held-out images searched for each one-category task's evaluation set
    held_labels = labels_of(held_out, pool)
    tasks = []
    for framing in config.framings:
        train, held = (object_crops(stream), object_crops(held_out)) if framing == "crop" else (stream, held_out)
        counts = np.bincount(train_labels, minlength=stream.num_classes)
        tasks.append(Task("multi", framing, stream.num_classes, mirrored_set(train, np.arange(config.train_images)),
                          counts / counts.sum(), config.epochs, config.epochs,
                          Labelled(subset(held, np.arange(config.eval_images)), evaluation=True), stream.part_names))
        for name in config.single_classes:
            k = stream.class_names.index(name)
            train_set, share = one_category_set(train, train_labels, k)
            half = config.eval_images // 2
            chosen = np.concatenate([np.flatnonzero(held_labels == k)[:half], np.flatnonzero(held_labels != k)[:half]])
            tasks.append(Task(f"single_{name}", framing, 1, train_set, np.array([share]), config.single_epochs,
                              max(config.single_epochs // 5, 1),
                              Labelled(subset(held, chosen), positive=k, evaluation=True), stream.part_names))
    return tasks


def folder_tasks(config: IcnnConfig, dataset: str, root: str) -> list[Task]:
    """The multi-category task of a CUB-200-2011 or VOC2010 (with Annotations_Part) folder.

    CUB is cropped to its boxes ("crop") or kept whole; VOC-Part's reader
    already shows each object cropped to its box, the one framing it has.
    """
    if dataset == "cub":
        train_reader, eval_reader = CUB200(root, split="train"), CUB200(root, split="test")
        framings, parts, part_names = config.framings, CUB_ICNN_PARTS, None
    else:
        train_reader, eval_reader = VOCPart(root, split="train"), VOCPart(root, split="val")
        framings, parts, part_names = ("crop",), None, train_reader.part_names
    train_source, eval_source = sized(train_reader, config.image_size), sized(eval_reader, config.image_size)
    labels = labels_of(train_source, len(train_source))
    counts = np.bincount(labels, minlength=train_reader.num_classes)
    tasks = []
    for framing in framings:
        view = (lambda s: object_crops(s, box="bbox")) if dataset == "cub" and framing == "crop" else (lambda s: s)
        evaluated = subset(view(eval_source), np.arange(min(config.eval_images, len(eval_source))))
        tasks.append(Task(dataset, framing, train_reader.num_classes,
                          mirrored_set(view(train_source), np.arange(len(train_source))), counts / counts.sum(),
                          config.epochs, config.epochs, Labelled(evaluated, evaluation=True, parts=parts),
                          part_names))
    return tasks


def pretraining_source(config: IcnnConfig, seed: int, dataset: str = "synthparts", root: str = "") -> Any:
    """What the backbone is first trained on (whole images): SynthParts' stream, or a folder's train split."""
    if dataset == "synthparts":
        stream = common.synthparts_streams(seed, config.image_size)[0]
        return common.ImageLabel(stream), stream.num_classes, False
    reader = CUB200(root, split="train") if dataset == "cub" else VOCPart(root, split="train")
    return common.ImageLabel(sized(reader, config.image_size)), reader.num_classes, True

