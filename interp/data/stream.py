"""The one convention for feeding a dataset to anything that streams it.

Everything that reads a dataset in batches (training, evaluation, dataset
examples, dissection, inversion) takes a *batch source*: an object with

    len(source)              # the number of examples
    source.batch(indices)    # a pytree of arrays, each with leading axis len(indices)

SynthParts, `ConceptSet`s and `sized(reader, image_size)` are batch sources.
Because a batch is a pure function of its indices, the caller decides the
order: `epoch_indices` gives the indices of global batch `step` of an endless
stream of shuffled epochs (so a resumed run sees the batches an uninterrupted
one sees), `pass_indices` one ordered pass over a dataset; and each process of
a multi-host run asks only for its own rows of those indices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class BatchSource(Protocol):
    """A dataset read by index: `len(source)` examples, `source.batch(indices)` a pytree [len(indices), ...]."""

    def __len__(self) -> int:
        ...

    def batch(self, indices: Sequence[int] | np.ndarray) -> Any:
        ...


def check_source(source: Any, argument: str = "data") -> BatchSource:
    """Returns `source` if it is a batch source; otherwise a `ValueError` naming `argument`."""
    if not isinstance(source, BatchSource):
        raise ValueError(
            f"{argument}: expected a batch source (an object with __len__ and batch(indices), "
            f"e.g. SynthParts or interp.data.sized(reader, image_size)), got {type(source).__name__}"
        )
    if len(source) < 1:
        raise ValueError(f"{argument}: the batch source is empty")
    return source


def epoch_indices(step: int, batch_size: int, num_examples: int, seed: int = 0, *,
                  shuffle: bool = True) -> np.ndarray:
    """The example indices int32 [batch_size] of global batch `step` of an endless stream of epochs.

    Epoch `e` visits `range(num_examples)` in the order
    `np.random.default_rng([seed, e]).permutation(num_examples)` (in index
    order with `shuffle=False`, e.g. for SynthParts, whose examples are
    already independent draws); batches run across epoch boundaries, so batch
    `step` holds positions `step * batch_size ... + batch_size - 1` of the
    concatenated epochs.
    """
    positions = step * batch_size + np.arange(batch_size)
    epochs, offsets = np.divmod(positions, num_examples)
    if not shuffle:
        return offsets.astype(np.int32)
    order = {int(e): np.random.default_rng([seed, int(e)]).permutation(num_examples) for e in np.unique(epochs)}
    return np.array([order[int(e)][o] for e, o in zip(epochs, offsets)], np.int32)


def pass_indices(num_examples: int, batch_size: int, first: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One ordered pass over examples `first ... first + num_examples - 1` in batches of `batch_size`.

    Yields `(indices int32 [batch_size], valid bool [batch_size])`; the last
    batch repeats its final index where `valid` is False, so every batch has
    one shape and compiles once.
    """
    for start in range(0, num_examples, batch_size):
        count = min(batch_size, num_examples - start)
        offsets = np.minimum(np.arange(batch_size), count - 1)
        yield (first + start + offsets).astype(np.int32), np.arange(batch_size) < count


@dataclasses.dataclass(frozen=True)
class sized:  # noqa: N801 -- reads as a function: sized(reader, 224)
    """A dataset reader (`interp.data.ExampleSource`) as a batch source of `image_size` images.

    Readers resize at batch time (`reader.batch(indices, image_size)`); this
    fixes the size so that the reader is a batch source like SynthParts.
    """

    reader: Any
    image_size: int

    def __len__(self) -> int:
        return len(self.reader)

    def batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        return self.reader.batch(np.asarray(indices), image_size=self.image_size)

    @property
    def num_classes(self) -> int | None:
        return self.reader.num_classes

    @property
    def class_names(self) -> Sequence[str] | None:
        return self.reader.class_names
