"""Objectives for feature visualization: values with an algebra, as in Lucid.

An `Objective` maps the activations of a batch to per-example scores [b]; the
render loop maximizes their sum. The activations dictionary holds every layer
the objective names (`objective.layers`) plus `INPUT`, the image being
optimized [b, H, W, 3] before any transform.

Objectives add, subtract, negate, scale by numbers, divide by numbers and
`sum()`; a string `"layer:channel"` stands for `channel(layer, channel)`
wherever an objective is expected:

    obj = "relu3:5" - 1e-3 * total_variation() + 0.5 * channel("relu4", 7)

Writing a new one takes a few lines:

    def center_of_mass_right(layer):
        def score(acts):
            a = acts[layer].mean(-1)                        # [b, h, w]
            return (a * jnp.linspace(-1, 1, a.shape[2])).mean((1, 2))
        return Objective(score, (layer,), f"right({layer})")

Regularizers (`l1`, `l2`, `total_variation`, `blur_penalty`) return a
positive penalty, so they are subtracted: `obj - 0.05 * l1()`. Channels, positions
and vectors may be traced values, so `jax.vmap(lambda c: channel("relu3", c))`
builds one objective per channel inside a single compiled render.

Indices are checked where their bounds are known: an index that is not an
integer when the objective is built, a concrete channel, class or position
out of range for its layer when the objective first meets the layer's
activations (while the render is traced, so no step pays for it). A traced
index has no value to check; out of range, it scores NaN (not a clamped or
silent score), so the render's scores show it.
"""

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

INPUT = "input"

Acts = Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Objective:
    """A per-example score of activations, closed under `+ - * /` and negation.

    Attributes:
      fn: `fn(acts) -> scores [b]`, with `acts` as in the module docstring.
      layers: the layer names `fn` reads (`INPUT` for the image itself).
      description: a readable formula, e.g. `"channel(relu3, 5) - 0.001*tv(input)"`.
    """

    fn: Callable[[Acts], jax.Array]
    layers: tuple[str, ...]
    description: str = "objective"

    def __call__(self, acts: Acts) -> jax.Array:
        missing = [n for n in self.layers if n not in acts]
        if missing:
            raise ValueError(
                f"acts: objective {self.description} needs layer {missing[0]!r}; got {sorted(acts)}"
            )
        scores = self.fn(acts)
        batch = jnp.shape(acts[self.layers[0]])[0]
        if jnp.shape(scores) != (batch,):
            raise ValueError(
                f"objective {self.description}: expected per-example scores of shape ({batch},), "
                f"got {jnp.shape(scores)}"
            )
        return scores

    def __repr__(self) -> str:
        return f"Objective({self.description})"

    def __add__(self, other):
        other = _coerce(other)
        if other is NotImplemented:
            return NotImplemented
        return _combine(lambda a, b: a + b, self, other, f"{self.description} + {other.description}")

    def __radd__(self, other):
        # `sum(objectives)` starts from the integer 0.
        if isinstance(other, numbers.Number) and other == 0:
            return self
        other = _coerce(other)
        return NotImplemented if other is NotImplemented else other + self

    def __sub__(self, other):
        other = _coerce(other)
        if other is NotImplemented:
            return NotImplemented
        return _combine(lambda a, b: a - b, self, other, f"{self.description} - ({other.description})")

    def __rsub__(self, other):
        other = _coerce(other)
        return NotImplemented if other is NotImplemented else other - self

    def __neg__(self):
        return Objective(lambda acts: -self.fn(acts), self.layers, f"-({self.description})")

    def __mul__(self, factor):
        if not _is_scalar(factor):
            return NotImplemented
        return Objective(lambda acts: factor * self.fn(acts), self.layers, f"{factor}*({self.description})")

    __rmul__ = __mul__

    def __truediv__(self, divisor):
        if not _is_scalar(divisor):
            return NotImplemented
        return Objective(lambda acts: self.fn(acts) / divisor, self.layers, f"({self.description})/{divisor}")


def _is_scalar(value) -> bool:
    return isinstance(value, numbers.Number) or (hasattr(value, "shape") and jnp.shape(value) == ())


def _coerce(value):
    if isinstance(value, Objective):
        return value
    if isinstance(value, str):
        return as_objective(value)
    return NotImplemented


def _combine(op, a: Objective, b: Objective, description: str) -> Objective:
    layers = tuple(dict.fromkeys(a.layers + b.layers))
    return Objective(lambda acts: op(a.fn(acts), b.fn(acts)), layers, description)


def as_objective(objective: "Objective | str") -> Objective:
    """An `Objective` unchanged, or the `"layer:channel"` shorthand as `channel(layer, channel)`."""
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str):
        layer, sep, index = objective.rpartition(":")
        if not sep or not layer or not index.strip().lstrip("-").isdigit():
            raise ValueError(f"objective: expected 'layer:channel' such as 'relu3:5', got {objective!r}")
        return channel(layer, int(index))
    raise TypeError(f"objective: expected an Objective or a 'layer:channel' string, got {type(objective)}")


def objective_sum(objectives: Sequence["Objective | str"]) -> Objective:
    """The sum of several objectives (also what the builtin `sum` gives)."""
    if not objectives:
        raise ValueError("objectives: expected at least one objective")
    return sum((as_objective(o) for o in objectives), start=0)


def _check_integer(argument: str, index) -> None:
    """Raises a `ValueError` unless `index` (concrete or traced) is an integer scalar."""
    if jnp.ndim(index) != 0 or not jnp.issubdtype(jnp.result_type(index), jnp.integer):
        raise ValueError(f"{argument}: expected an integer index, got {index!r}")


def _check_position(position) -> None:
    if position is not None:
        if len(position) != 2:
            raise ValueError(f"position: expected (row, col), got {position!r}")
        for index in position:
            _check_integer("position", index)


def _check_in_range(argument: str, index, size: int, layer: str, what: str) -> None:
    """At trace time: a concrete `index` must lie in [-size, size), as a Python index would."""
    if not isinstance(index, jax.core.Tracer) and not -size <= int(index) < size:
        raise ValueError(f"{argument}: {int(index)} is out of range for layer {layer!r}, "
                         f"which has {size} {what}; expected 0..{size - 1}")


def _take_unit(a: jax.Array, index, argument: str, layer: str, what: str = "channels") -> jax.Array:
    """`a[..., index]`; a traced index out of range gives NaN (`jnp.take`'s fill)."""
    _check_in_range(argument, index, a.shape[-1], layer, what)
    return jnp.take(a, index, axis=-1)


def _at(a: jax.Array, position, layer: str) -> jax.Array:
    """[b, h, w, c] at spatial `position` (row, col), or its center if None -> [b, c].

    A traced position outside the map gives NaN rather than the clamped edge.
    """
    if a.ndim == 2:
        return a
    if position is None:
        position = tuple(s // 2 for s in a.shape[1:-1])
    row, col = position
    _check_in_range("position", row, a.shape[1], layer, "rows")
    _check_in_range("position", col, a.shape[2], layer, "columns")
    if isinstance(row, jax.core.Tracer) or isinstance(col, jax.core.Tracer):
        return a.at[:, row, col].get(mode="fill", fill_value=jnp.nan)
    return a[:, row, col]  # checked above; a static slice, not a gather


# Units and layers.

def neuron(layer: str, channel_index, position=None) -> Objective:
    """One unit: channel `channel_index` at spatial `position` (row, col; default the center).

    Raises:
      ValueError: a non-integer index or position; at the first call, a
        concrete one out of range for the layer (see the module docstring).
    """
    _check_integer("channel_index", channel_index)
    _check_position(position)
    return Objective(
        lambda acts: _take_unit(_at(acts[layer], position, layer), channel_index, "channel_index", layer),
        (layer,),
        f"neuron({layer}, {channel_index}, {position})",
    )


def channel(layer: str, channel_index) -> Objective:
    """A channel's mean activation over all positions (for a dense layer, the unit itself).

    Raises:
      ValueError: a non-integer index; at the first call, a concrete one out
        of range for the layer's channels (see the module docstring).
    """
    _check_integer("channel_index", channel_index)

    def score(acts):
        a = _take_unit(acts[layer], channel_index, "channel_index", layer)
        return a.mean(axis=tuple(range(1, a.ndim))) if a.ndim > 1 else a

    return Objective(score, (layer,), f"channel({layer}, {channel_index})")


def deepdream(layer: str) -> Objective:
    """DeepDream's layer objective: the mean square of every activation of `layer`."""
    return Objective(
        lambda acts: jnp.square(acts[layer]).reshape(acts[layer].shape[0], -1).mean(-1),
        (layer,),
        f"deepdream({layer})",
    )



def class_logit(class_index, layer: str = "logits") -> Objective:
    """The pre-softmax score of class `class_index`.

    Raises:
      ValueError: as `channel`, for the classes of `layer`.
    """
    _check_integer("class_index", class_index)
    return Objective(
        lambda acts: _take_unit(acts[layer], class_index, "class_index", layer, "classes"),
        (layer,),
        f"logit({class_index})",
    )


def class_probability(class_index, layer: str = "logits") -> Objective:
    """The softmax probability of class `class_index`: raising it also lowers the other classes.

    Raises:
      ValueError: as `channel`, for the classes of `layer`.
    """
    _check_integer("class_index", class_index)
    return Objective(
        lambda acts: _take_unit(jax.nn.softmax(acts[layer], axis=-1), class_index, "class_index", layer, "classes"),
        (layer,),
        f"probability({class_index})",
    )


# Directions and activation vectors.

def _per_example(vector: jax.Array, a: jax.Array) -> jax.Array:
    """`vector` [c] or [b, c] broadcast against positions of `a` [b, ..., c]."""
    vector = jnp.asarray(vector, a.dtype)
    if vector.ndim == 1:
        vector = jnp.broadcast_to(vector, (a.shape[0], a.shape[-1]))
    if vector.shape != (a.shape[0], a.shape[-1]):
        raise ValueError(
            f"vector: expected shape [{a.shape[-1]}] or [{a.shape[0]}, {a.shape[-1]}], got {list(vector.shape)}"
        )
    return vector.reshape(vector.shape[:1] + (1,) * (a.ndim - 2) + vector.shape[1:])


def direction(layer: str, vector, position=None, cosine_power: float = 0.0) -> Objective:
    """Activation along a direction: `a·v`, times `cos(a, v)**cosine_power`.

    With `cosine_power` > 0 (Olah et al. use 1) the score prefers activations
    pointing the same way as `v` over ones that are merely large.

    Args:
      layer: a layer with channels last.
      vector: [c] or per example [b, c]; e.g. an activation vector of a real
        image at one position ("what does this location see").
      position: (row, col) to score one position; None averages over all positions.
      cosine_power: exponent of the cosine factor (0: plain dot product).

    Raises:
      ValueError: a non-integer position; at the first call, a concrete one
        outside the layer's map, or a vector of the wrong shape.
    """
    _check_position(position)

    def score(acts):
        a = acts[layer]
        if position is not None:
            a = _at(a, position, layer)
        v = _per_example(vector, a)
        dot = (a * v).sum(-1)
        if cosine_power:
            norms = jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(v, axis=-1)
            cosine = dot / jnp.maximum(norms, 1e-6)
            dot = dot * jnp.maximum(cosine, 1e-6) ** cosine_power
        return dot.reshape(dot.shape[0], -1).mean(-1)

    return Objective(score, (layer,), f"direction({layer}, cos^{cosine_power})")


def activation_match(layer: str, target, mode: str = "dot") -> Objective:
    """Similarity of a whole layer to target activations: the objective of feature inversion.

    Args:
      layer: the layer to match.
      target: activations [...] of one image, or [b, ...] per example, shaped as
        the layer without (or with) its batch axis.
      mode: "dot" for `a·a0` (Mahendran & Vedaldi's pre-image with a linear
        kernel) or "cosine" for the cosine similarity, which ignores scale.
    """
    if mode not in ("dot", "cosine"):
        raise ValueError(f"mode: expected 'dot' or 'cosine', got {mode!r}")

    def score(acts):
        a = acts[layer].reshape(acts[layer].shape[0], -1)
        t = jnp.asarray(target, a.dtype)
        t = t.reshape(1, -1) if t.size == a.shape[1] else t.reshape(a.shape[0], -1)
        if t.shape[1] != a.shape[1]:
            raise ValueError(f"target: expected {a.shape[1]} values per example for layer {layer!r}, got {t.shape[1]}")
        dot = (a * t).sum(-1)
        if mode == "dot":
            return dot
        return dot / jnp.maximum(jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(t, axis=-1), 1e-6)

    return Objective(score, (layer,), f"match({layer}, {mode})")


# Objectives over the batch.

def diversity(layer: str) -> Objective:
    """Minus each example's mean cosine similarity of Gram matrices to the others (Olah et al. 2017).

    Added to a unit's objective with a weight, it pushes a batch toward
    different ways of exciting the unit. Needs a batch of at least two.
    """
    def score(acts):
        a = acts[layer]
        b = a.shape[0]
        if b < 2:
            raise ValueError(f"diversity({layer}): needs a batch of at least 2 images, got {b}")
        flat = a.reshape(b, -1, a.shape[-1])
        gram = jnp.einsum("bpc,bpd->bcd", flat, flat).reshape(b, -1)
        gram = gram / jnp.maximum(jnp.linalg.norm(gram, axis=-1, keepdims=True), 1e-6)
        similarity = gram @ gram.T
        others = similarity.sum(-1) - jnp.diagonal(similarity)
        return -others / (b - 1)

    return Objective(score, (layer,), f"diversity({layer})")


def alignment(layer: str, decay_ratio: float = 2.0) -> Objective:
    """Minus the distance of each example's activations to its batch neighbors (Lucid's alignment).

    Example i is pulled toward examples i±d with weight `decay_ratio**-d`, so
    a batch that interpolates between objectives changes smoothly.
    """
    def score(acts):
        a = acts[layer].reshape(acts[layer].shape[0], -1)
        b = a.shape[0]
        total = jnp.zeros((b,), a.dtype)
        for d in range(1, b):
            distance = jnp.square(a[d:] - a[:-d]).sum(-1) / decay_ratio**d
            total = total.at[d:].add(-distance).at[:-d].add(-distance)
        return total / 2

    return Objective(score, (layer,), f"alignment({layer})")


# Regularizers: positive penalties, to be subtracted.

def _flat(a: jax.Array) -> jax.Array:
    return a.reshape(a.shape[0], -1)


def l1(layer: str = INPUT, center: float = 0.0) -> Objective:
    """Penalty `Σ|x − center|` per example, to subtract."""
    return Objective(lambda acts: jnp.abs(_flat(acts[layer]) - center).sum(-1), (layer,), f"l1({layer})")


def l2(layer: str = INPUT, center: float = 0.0) -> Objective:
    """Penalty `‖x − center‖²` per example, to subtract (weight it: `α * l2()` is the α‖X‖² prior)."""
    return Objective(lambda acts: jnp.square(_flat(acts[layer]) - center).sum(-1), (layer,), f"l2({layer})")


def total_variation(layer: str = INPUT, beta: float = 1.0) -> Objective:
    """Penalty `Σ |x[i+1,j] − x[i,j]|^β + |x[i,j+1] − x[i,j]|^β` per example (anisotropic TV), to subtract."""
    def score(acts):
        x = acts[layer]
        rows = jnp.abs(x[:, 1:] - x[:, :-1]) ** beta
        cols = jnp.abs(x[:, :, 1:] - x[:, :, :-1]) ** beta
        return _flat(rows).sum(-1) + _flat(cols).sum(-1)

    return Objective(score, (layer,), f"tv({layer})")


def blur_penalty(layer: str = INPUT) -> Objective:
    """Penalty `½‖x − stop_gradient(blur3x3(x))‖²` per example, to subtract: each step pulls the image toward its blur.

    This is Lucid's `blur_input_each_step` written as a penalty: its gradient
    is `x − blur(x)`, a high-pass of the image, so it damps high frequencies.
    """
    def score(acts):
        x = acts[layer]
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        h, w = x.shape[1:3]
        blurred = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9
        return 0.5 * _flat(jnp.square(x - jax.lax.stop_gradient(blurred))).sum(-1)

    return Objective(score, (layer,), f"blur_penalty({layer})")
