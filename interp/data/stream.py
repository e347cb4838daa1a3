"""The one convention for feeding a dataset to anything that streams it.

Everything that reads a dataset in batches (training, evaluation, dataset
examples, dissection, inversion) takes a *batch source*: an object with

    len(source)              # the number of examples
    source.batch(indices)    # a pytree of arrays, each with leading axis len(indices)

SynthParts, the dissection concept sets (`dissect.SynthPartsConcepts`,
`dissect.BrodenConcepts`), `sized(reader, image_size)` and `in_memory(arrays)`
are batch sources. A consumer that reads only images takes a batch that is an
image array or a dict with an 'image' entry (`batch_images`).
Because a batch is a pure function of its indices, the caller decides the
order: `epoch_indices` gives the indices of global batch `step` of an endless
stream of shuffled epochs (so a resumed run sees the batches an uninterrupted
one sees), `pass_indices` one ordered pass over a dataset; and each process of
a multi-host run asks only for its own rows of those indices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

from interp._checks import check_positive_int


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


def check_indices(indices: Any, argument: str = "indices") -> Any:
    """Returns `indices` if they are integers (concrete or traced), else raises a `ValueError` naming `argument`.

    Every batch source takes integer example indices; a float index would be
    truncated to another example without a word. An empty list passes (numpy
    gives it a float dtype, but it holds no index to truncate).
    """
    dtype = indices.dtype if hasattr(indices, "dtype") else np.asarray(indices).dtype
    if np.size(indices) and not np.issubdtype(dtype, np.integer):
        raise ValueError(f"{argument}: expected integer example indices, got dtype {dtype}")
    return indices


def check_span(source: BatchSource, num_examples: int | None, first: int = 0, argument: str = "data") -> int:
    """The number of examples a pass over `source` from index `first` reads.

    Args:
      source: a batch source.
      num_examples: examples to read, or None for all from `first` to `len(source)`.
      first: the index of the first example.
      argument: the name of `source` in the caller, for the errors.

    Raises:
      ValueError: `first` negative, `num_examples` not a positive int, or the
        span `first ... first + num_examples - 1` past `len(source)`.
    """
    if isinstance(first, bool) or not isinstance(first, (int, np.integer)) or first < 0:
        raise ValueError(f"first: expected a non-negative int, got {first!r}")
    available = len(source) - int(first)
    if num_examples is None:
        if available < 1:
            raise ValueError(f"first: expected an index below len({argument}) = {len(source)}, got {first}")
        return available
    count = check_positive_int("num_examples", num_examples)
    if count > available:
        raise ValueError(f"num_examples: expected first + num_examples <= len({argument}) = {len(source)}, "
                         f"got {first} + {count}")
    return count


def batch_images(batch: Any, argument: str = "data") -> Any:
    """The images [B, H, W, C] of a batch: the batch itself if it is an array, else its 'image' entry."""
    images = batch.get("image") if isinstance(batch, Mapping) else batch
    if len(getattr(images, "shape", ())) != 4:
        got = f"a dict with keys {sorted(batch)}" if isinstance(batch, Mapping) and "image" not in batch else (
            f"shape {list(images.shape)}" if hasattr(images, "shape") else type(images).__name__)
        raise ValueError(f"{argument}: expected batches of images [B, H, W, C] or dicts with an 'image' entry, "
                         f"got {got}")
    return images


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
    """A dataset reader (`interp.data.Reader`) as a batch source of `image_size` images.

    Readers resize at batch time (`reader.batch(indices, image_size)`); this
    fixes the size so that the reader is a batch source like SynthParts.
    """

    reader: Any
    image_size: int

    def __len__(self) -> int:
        return len(self.reader)

    def batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        return self.reader.batch(np.asarray(check_indices(indices)), image_size=self.image_size)

    @property
    def num_classes(self) -> int | None:
        return self.reader.num_classes

    @property
    def class_names(self) -> Sequence[str] | None:
        return self.reader.class_names


@dataclasses.dataclass(frozen=True, eq=False)
class in_memory:  # noqa: N801 -- reads as a function: in_memory(images)
    """Arrays already in memory as a batch source: `batch(indices)` takes those rows of every leaf.

    For data computed beforehand (a fixed pool of images, a test's random
    images): `in_memory(images)`, or `in_memory({"image": images, "label": labels})`.
    """

    arrays: Any

    def __post_init__(self):
        lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(self.arrays)}
        if not lengths or None in lengths or len(lengths) > 1:
            shapes = [list(np.shape(leaf)) for leaf in jax.tree.leaves(self.arrays)]
            raise ValueError(f"arrays: expected arrays with one leading length, got shapes {shapes}")

    def __len__(self) -> int:
        return int(np.shape(jax.tree.leaves(self.arrays)[0])[0])

    def batch(self, indices: Sequence[int] | np.ndarray) -> Any:
        """Rows `indices` of every leaf.

        Raises:
          ValueError: `indices` are not integers.
        """
        indices = np.asarray(check_indices(indices))
        return jax.tree.map(lambda leaf: leaf[indices], self.arrays)
