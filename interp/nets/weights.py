"""Import of torchvision weights from `.safetensors` or `.npz` files (never pickle).

Nothing is downloaded: convert a torchvision checkpoint once, where torch is
installed, e.g.

    from safetensors.torch import save_file
    save_file(torchvision.models.vgg16(weights="DEFAULT").state_dict(), "vgg16.safetensors")

then `variables = from_torchvision("vgg16", load_torchvision_state_dict(path))`.

Supported layouts: torchvision's `alexnet`, `vgg16`, `resnet18`, `resnet50`.
torchvision has no VGG-M or VGG-S; for them ("vgg_m", "vgg_s") this module
reads a documented layout named after the Caffe layers, with torch shapes:
`conv{1..5}.weight` [O, I, kh, kw], `conv{1..5}.bias` [O], `fc6.weight`
[4096, 512*6*6] (flattened in torch's C, H, W order), `fc6.bias`, `fc7.*`, and
`fc8.*` (the classifier, Flax's `logits`).

Conversions: conv OIHW -> HWIO; linear [out, in] -> [in, out]; the first linear
after a flatten is re-ordered from torch's (C, H, W) flatten to NHWC's
(H, W, C); BatchNorm weight/bias/running_mean/running_var -> params
scale/bias and batch_stats mean/var; `num_batches_tracked` is ignored.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy

from interp.nets import zoo
from interp.nets.alexnet import ALEXNET_CONVS
from interp.nets.vgg import VGG16_BLOCKS

_IGNORED_SUFFIX = "num_batches_tracked"


class WeightImportError(ValueError):
    """A state dict does not fit the model: missing or unexpected keys, or wrong shapes."""


def load_torchvision_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Reads a state dict from a `.safetensors` or `.npz` file, without pickle.

    Args:
      path: file path; the suffix picks the reader.

    Returns:
      {torchvision key: array}, e.g. {"features.0.weight": [64, 3, 11, 11] float32, ...}.

    Raises:
      ValueError: for any other suffix (`.pt`/`.pth` files are pickles, which
        can run code when loaded), or an `.npz` holding pickled objects.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return dict(safetensors.numpy.load_file(path))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    raise ValueError(
        f"unsupported weight file {str(path)!r}: expected a .safetensors or .npz file "
        "(pickled .pt/.pth checkpoints are refused; convert them with safetensors.torch.save_file)"
    )


class _Entry(NamedTuple):
    """Where one torch tensor goes in the Flax variables, and how it is reshaped."""

    key: str  # torchvision state-dict key
    collection: str  # "params" or "batch_stats"
    path: tuple[str, ...]  # path inside that collection
    kind: str  # "conv" | "linear" | "copy"
    chw: tuple[int, int, int] | None = None  # torch flatten (C, H, W) of a linear's input


def _conv(torch_name: str, flax_path: tuple[str, ...], bias: bool = True) -> list[_Entry]:
    entries = [_Entry(f"{torch_name}.weight", "params", flax_path + ("kernel",), "conv")]
    if bias:
        entries.append(_Entry(f"{torch_name}.bias", "params", flax_path + ("bias",), "copy"))
    return entries


def _linear(torch_name: str, flax_name: str, chw: tuple[int, int, int] | None = None) -> list[_Entry]:
    return [
        _Entry(f"{torch_name}.weight", "params", (flax_name, "kernel"), "linear", chw),
        _Entry(f"{torch_name}.bias", "params", (flax_name, "bias"), "copy"),
    ]


def _batchnorm(torch_name: str, flax_path: tuple[str, ...]) -> list[_Entry]:
    pairs = (("weight", "params", "scale"), ("bias", "params", "bias"),
             ("running_mean", "batch_stats", "mean"), ("running_var", "batch_stats", "var"))
    return [_Entry(f"{torch_name}.{t}", coll, flax_path + (f,), "copy") for t, coll, f in pairs]


def _alexnet_layout() -> list[_Entry]:
    # torchvision `features` indices: each conv is followed by a ReLU, and the
    # pooled ones by a MaxPool, which have no parameters but take an index.
    entries, index = [], 0
    for name, *_, pool in ALEXNET_CONVS:
        entries += _conv(f"features.{index}", (name,))
        index += 3 if pool else 2
    entries += _linear("classifier.1", "fc6", chw=(256, 6, 6))
    entries += _linear("classifier.4", "fc7") + _linear("classifier.6", "logits")
    return entries


def _vgg16_layout() -> list[_Entry]:
    entries, index = [], 0
    for b, widths in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, len(widths) + 1):
            entries += _conv(f"features.{index}", (f"conv{b}_{i}",))
            index += 2  # conv, ReLU
        index += 1  # MaxPool
    entries += _linear("classifier.0", "fc6", chw=(512, 7, 7))
    entries += _linear("classifier.3", "fc7") + _linear("classifier.6", "logits")
    return entries


def _chatfield_layout() -> list[_Entry]:
    entries = [e for i in range(1, 6) for e in _conv(f"conv{i}", (f"conv{i}",))]
    entries += _linear("fc6", "fc6", chw=(512, 6, 6)) + _linear("fc7", "fc7")
    return entries + _linear("fc8", "logits")


def _resnet_layout(stage_sizes: tuple[int, ...], convs_per_block: int) -> list[_Entry]:
    entries = _conv("conv1", ("conv1",), bias=False) + _batchnorm("bn1", ("bn1",))
    for i, blocks in enumerate(stage_sizes, start=1):
        for j in range(blocks):
            torch_block, flax_block = f"layer{i}.{j}", f"layer{i}_{j}"
            for k in range(1, convs_per_block + 1):
                entries += _conv(f"{torch_block}.conv{k}", (flax_block, f"conv{k}"), bias=False)
                entries += _batchnorm(f"{torch_block}.bn{k}", (flax_block, f"bn{k}"))
            if j == 0 and (i > 1 or convs_per_block == 3):  # stride or width changes
                entries += _conv(f"{torch_block}.downsample.0", (flax_block, "downsample_conv"), bias=False)
                entries += _batchnorm(f"{torch_block}.downsample.1", (flax_block, "downsample_bn"))
    return entries + _linear("fc", "logits")


_LAYOUTS = {
    "alexnet": _alexnet_layout,
    "vgg16": _vgg16_layout,
    "vgg_m": _chatfield_layout,
    "vgg_s": _chatfield_layout,
    "resnet18": lambda: _resnet_layout((2, 2, 2, 2), convs_per_block=2),
    "resnet50": lambda: _resnet_layout((3, 4, 6, 3), convs_per_block=3),
}


def _torch_shape(kind: str, flax_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The torch shape of a tensor whose converted Flax shape is `flax_shape`."""
    if kind == "conv":  # HWIO -> OIHW
        return tuple(flax_shape[i] for i in (3, 2, 0, 1))
    if kind == "linear":  # [in, out] -> [out, in]
        return tuple(reversed(flax_shape))
    return tuple(flax_shape)


def _to_flax(entry: _Entry, value: np.ndarray) -> np.ndarray:
    """Converts one torch tensor (already shape-checked) to its Flax layout."""
    value = np.asarray(value, np.float32)
    if entry.kind == "conv":
        return value.transpose(2, 3, 1, 0)
    if entry.kind == "linear" and entry.chw is not None:
        # torch flattened [C, H, W]; the Flax model flattens [H, W, C].
        out = value.shape[0]
        return value.reshape(out, *entry.chw).transpose(2, 3, 1, 0).reshape(-1, out)
    if entry.kind == "linear":
        return value.T
    return value


def _expected_flax_shapes(model_name: str, num_classes: int) -> dict[tuple[str, ...], tuple[int, ...]]:
    """{(collection, *path): shape} of the model's variables, traced without compute."""
    model = zoo.create_module(model_name, num_classes=num_classes)
    x = jax.ShapeDtypeStruct((1, *zoo.paper_input_size(model_name), 3), jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
    return {tuple(k.key for k in path): leaf.shape for path, leaf in flat}


def _check(state_dict: Mapping[str, Any], entries: list[_Entry],
           flax_shapes: Mapping[tuple[str, ...], tuple[int, ...]]) -> None:
    """Raises WeightImportError listing every missing/unexpected key and shape mismatch."""
    problems = []
    for e in entries:
        expected = _torch_shape(e.kind, flax_shapes[(e.collection, *e.path)])
        if e.key not in state_dict:
            problems.append(f"missing key {e.key!r} (expected shape {expected})")
        elif tuple(state_dict[e.key].shape) != expected:
            found = tuple(state_dict[e.key].shape)
            problems.append(f"key {e.key!r}: expected shape {expected}, found {found}")
    known = {e.key for e in entries}
    for key, value in state_dict.items():
        if key not in known and not key.endswith(_IGNORED_SUFFIX):
            problems.append(f"unexpected key {key!r} (found shape {tuple(np.shape(value))})")
    if problems:
        raise WeightImportError("state dict does not fit the model:\n  " + "\n  ".join(problems))


def _nest(flat: Mapping[tuple[str, ...], np.ndarray]) -> dict[str, Any]:
    """{("params", "conv1", "kernel"): a} -> {"params": {"conv1": {"kernel": a}}}."""
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def from_torchvision(
    model_name: str, state_dict: Mapping[str, Any], num_classes: int = 1000
) -> dict[str, Any]:
    """Converts a torchvision state dict into variables for `zoo.create_module(model_name)`.

    Args:
      model_name: "alexnet", "vgg16", "resnet18", "resnet50", or "vgg_m" /
        "vgg_s" (in the Caffe-named layout of this module's docstring).
      state_dict: {torch key: array-like} as `load_torchvision_state_dict` returns.
      num_classes: classifier width of the checkpoint (1000 for ImageNet).

    Returns:
      {"params": ..., ["batch_stats": ...]} of float32 jax arrays, for
      `zoo.create_module(model_name, num_classes=num_classes).apply(variables, x)`.

    Raises:
      ValueError: unknown model name.
      WeightImportError: missing or unexpected keys, or shape mismatches (all
        listed, each with its key and the expected and found torch shapes).
    """
    if model_name not in _LAYOUTS:
        raise ValueError(f"no weight layout for model {model_name!r}; supported: {', '.join(_LAYOUTS)}")
    entries = _LAYOUTS[model_name]()
    flax_shapes = _expected_flax_shapes(model_name, num_classes)
    # Internal consistency: the layout must fill every variable of the model.
    unfilled = set(flax_shapes) - {(e.collection, *e.path) for e in entries}
    assert not unfilled, f"layout of {model_name} leaves variables unset: {sorted(unfilled)}"
    _check(state_dict, entries, flax_shapes)
    flat = {(e.collection, *e.path): jnp.asarray(_to_flax(e, state_dict[e.key])) for e in entries}
    return _nest(flat)
