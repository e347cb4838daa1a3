"""Scores and labels from the counts: IoU, best concept per category, detectors, CSV, JSON."""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from interp.dissect.concepts import ConceptSet
from interp.dissect.tally import CONVENTIONS, Counts

DETECTOR_IOU = 0.04  # Bau et al. 2017: a unit with IoU above this detects its concept.


def iou(counts: Counts, concepts: ConceptSet, convention: str = "category") -> np.ndarray:
    """float64 [K, C]: `I / (A + G - I)`, 0 for indices that are no concept.

    `A` is the unit's activation count under `convention` for the concept's
    category (see `interp.dissect.tally`).
    """
    activation = activation_counts(counts, convention)
    category_of = np.asarray(concepts.category_of)
    scored = category_of >= 0
    activation = activation[:, np.where(scored, category_of, 0)]  # [K, C]
    union = activation + counts.truth[None, :] - counts.intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(union > 0, counts.intersection / union, 0.0)
    return np.where(scored[None, :], result, 0.0)


def activation_counts(counts: Counts, convention: str) -> np.ndarray:
    """[K, Cat]: each unit's activation count per category under `convention`."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    return counts.activation_category if convention == "category" else counts.activation_lite


@dataclasses.dataclass(frozen=True, eq=False)
class LayerDissection:
    """The dissection of one layer.

    Attributes:
      layer: the layer's name.
      concepts: the concept table.
      counts: the tallies (int64).
      thresholds: [K] each unit's activation threshold `T_k`.
      convention: "category" or "lite", the activation count the IoU uses.
      quantile: the top fraction that set the thresholds.
      upsampling: "receptive_field" or "resize".
      top_images: [K, n] dataset indices of each unit's top images by maximum
        activation, best first.
      top_scores: [K, n] those maxima.
      iou_threshold: the IoU above which a unit is a detector.
    """

    layer: str
    concepts: ConceptSet
    counts: Counts
    thresholds: np.ndarray
    convention: str
    quantile: float
    upsampling: str
    top_images: np.ndarray
    top_scores: np.ndarray
    iou_threshold: float = DETECTOR_IOU

    @property
    def num_units(self) -> int:
        return len(self.thresholds)

    @functools.cached_property
    def iou(self) -> np.ndarray:
        """float64 [K, C]."""
        return iou(self.counts, self.concepts, self.convention)

    @functools.cached_property
    def best_per_category(self) -> tuple[np.ndarray, np.ndarray]:
        """(concept [Cat, K], IoU [Cat, K]): each unit's best concept in each category.

        A category with no concept gives concept -1 and IoU 0.
        """
        category_of = np.asarray(self.concepts.category_of)
        labels, scores = [], []
        for j in range(len(self.concepts.categories)):
            masked = np.where(category_of[None, :] == j, self.iou, -1.0)
            best = masked.argmax(1)
            score = masked[np.arange(self.num_units), best]
            labels.append(np.where(score >= 0, best, -1))
            scores.append(np.maximum(score, 0.0))
        return np.array(labels).reshape(-1, self.num_units), np.array(scores).reshape(-1, self.num_units)

    @functools.cached_property
    def best(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(category [K], concept [K], IoU [K]): each unit's label, its best over all categories."""
        labels, scores = self.best_per_category
        category = scores.argmax(0)
        units = np.arange(self.num_units)
        return category, labels[category, units], scores[category, units]

    @property
    def detectors(self) -> np.ndarray:
        """bool [K]: units whose best IoU exceeds `iou_threshold`."""
        return self.best[2] > self.iou_threshold

    @property
    def order(self) -> np.ndarray:
        """Units by best IoU, highest first (ties by unit number)."""
        return np.argsort(-self.best[2], kind="stable")

    def summary(self) -> dict[str, Any]:
        """Detectors and unique detected concepts per category, counted as Bau et al. count them.

        A detector counts in the category of its best label; a concept is
        unique once however many units detect it.
        """
        category, label, _ = self.best
        detectors = self.detectors
        per_category = {}
        for j, name in enumerate(self.concepts.categories):
            chosen = detectors & (category == j)
            per_category[name] = {"detectors": int(chosen.sum()),
                                  "unique_concepts": len(set(label[chosen].tolist()))}
        return {
            "layer": self.layer,
            "units": self.num_units,
            "images": int(self.counts.images),
            "convention": self.convention,
            "upsampling": self.upsampling,
            "quantile": self.quantile,
            "iou_threshold": self.iou_threshold,
            "detectors": int(detectors.sum()),
            "unique_concepts": len(set(label[detectors].tolist())),
            "by_category": per_category,
        }

    def rows(self) -> list[dict[str, Any]]:
        """NetDissect's tally rows, units by score: unit (1-based), category, label, score,
        then per category its best label's label/truth/activation/intersect/iou."""
        labels, scores = self.best_per_category
        best_category, best_label, best_score = self.best
        activation = activation_counts(self.counts, self.convention)
        names, categories = self.concepts.names, self.concepts.categories
        rows = []
        for unit in self.order:
            row = {"unit": int(unit) + 1, "category": categories[best_category[unit]],
                   "label": names[best_label[unit]] if best_label[unit] >= 0 else "",
                   "score": float(best_score[unit])}
            for j, category in enumerate(categories):
                concept = labels[j, unit]
                known = concept >= 0
                row[f"{category}-label"] = names[concept] if known else ""
                row[f"{category}-truth"] = int(self.counts.truth[concept]) if known else 0
                row[f"{category}-activation"] = int(activation[unit, j])
                row[f"{category}-intersect"] = int(self.counts.intersection[unit, concept]) if known else 0
                row[f"{category}-iou"] = float(scores[j, unit])
            rows.append(row)
        return rows


def csv_columns(categories: tuple[str, ...]) -> list[str]:
    """NetDissect's tally.csv header."""
    return ["unit", "category", "label", "score"] + [
        f"{category}-{field}" for category in categories
        for field in ("label", "truth", "activation", "intersect", "iou")]


def write_csv(dissection: LayerDissection, path: str | os.PathLike) -> None:
    """Writes the layer's rows in NetDissect's tally.csv format."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, csv_columns(dissection.concepts.categories))
        writer.writeheader()
        writer.writerows(dissection.rows())


def summary(dissections: Mapping[str, LayerDissection]) -> dict[str, Any]:
    """The JSON summary of several layers: {"layers": {name: LayerDissection.summary()}}."""
    return {"layers": {name: d.summary() for name, d in dissections.items()}}
