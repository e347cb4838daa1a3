"""torchvision weight import: files, key mapping, layouts, and errors that name the key.

Each check builds a random state dict in torchvision's layout, runs it through an
independent NCHW implementation of the torchvision network (written here with
`lax.conv_general_dilated`), and compares with the imported Flax model.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
from jax import lax

from interp import nets
from interp.nets.weights import WeightImportError

NUM_CLASSES = 7
ALEXNET_CONVS = ((0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3))


def _random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """He-scaled weights, small biases, BN stats near 1, so activations stay O(1)."""
    rng, sd = np.random.default_rng(seed), {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = np.array(3, np.int64)
        elif key.endswith(("running_var", "bn1.weight", "bn2.weight", "1.weight")) and len(shape) == 1:
            sd[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif len(shape) == 1:
            sd[key] = (0.1 * rng.normal(size=shape)).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[1:]))
            sd[key] = (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return sd


def _alexnet_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for index, out, inp, k in ALEXNET_CONVS:
        shapes[f"features.{index}.weight"], shapes[f"features.{index}.bias"] = (out, inp, k, k), (out,)
    for index, out, inp in ((1, 4096, 256 * 36), (4, 4096, 4096), (6, NUM_CLASSES, 4096)):
        shapes[f"classifier.{index}.weight"], shapes[f"classifier.{index}.bias"] = (out, inp), (out,)
    return shapes


VGG16_WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def _vgg16_conv_indices() -> list[tuple[int, int, int, bool]]:
    """(features index, out, in, last conv of its block) of VGG-16's 13 convs."""
    convs, index, inp = [], 0, 3
    for widths in VGG16_WIDTHS:
        for i, out in enumerate(widths):
            convs.append((index, out, inp, i == len(widths) - 1))
            index, inp = index + 2, out
        index += 1
    return convs


def _vgg16_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for index, out, inp, _ in _vgg16_conv_indices():
        shapes[f"features.{index}.weight"], shapes[f"features.{index}.bias"] = (out, inp, 3, 3), (out,)
    for index, out, inp in ((0, 4096, 512 * 49), (3, 4096, 4096), (6, NUM_CLASSES, 4096)):
        shapes[f"classifier.{index}.weight"], shapes[f"classifier.{index}.bias"] = (out, inp), (out,)
    return shapes


def _resnet18_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {"conv1.weight": (64, 3, 7, 7)}
    shapes.update(_bn_shapes("bn1", 64))
    inp = 64
    for i, width in enumerate((64, 128, 256, 512), start=1):
        for j in range(2):
            p = f"layer{i}.{j}"
            shapes[f"{p}.conv1.weight"] = (width, inp if j == 0 else width, 3, 3)
            shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
            shapes.update(_bn_shapes(f"{p}.bn1", width) | _bn_shapes(f"{p}.bn2", width))
            if j == 0 and i > 1:
                shapes[f"{p}.downsample.0.weight"] = (width, inp, 1, 1)
                shapes.update(_bn_shapes(f"{p}.downsample.1", width))
        inp = width
    shapes["fc.weight"], shapes["fc.bias"] = (NUM_CLASSES, 512), (NUM_CLASSES,)
    return shapes


def _bn_shapes(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    names = ("weight", "bias", "running_mean", "running_var")
    return {f"{prefix}.{n}": (c,) for n in names} | {f"{prefix}.num_batches_tracked": ()}


# --- an independent NCHW reference of the torchvision networks -----------------

def _conv(x, w, b=None, stride=1, pad=0):
    y = lax.conv_general_dilated(x, jnp.asarray(w), (stride, stride), [(pad, pad)] * 2,
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                 precision=lax.Precision.HIGHEST)
    return y if b is None else y + jnp.asarray(b)[None, :, None, None]


def _maxpool(x, k, s, p=0):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, s, s), ((0, 0), (0, 0), (p, p), (p, p)))


def _adaptive_avg(x, out):
    h, w = x.shape[2:]
    rows = [x[:, :, (i * h) // out: -((-(i + 1) * h) // out)] for i in range(out)]
    return jnp.stack([jnp.stack([r[:, :, :, (j * w) // out: -((-(j + 1) * w) // out)].mean((2, 3))
                                 for j in range(out)], -1) for r in rows], -2)


def _linear(x, sd, name):
    return (
        jnp.dot(x, jnp.asarray(sd[f"{name}.weight"]).T, precision=lax.Precision.HIGHEST) + sd[f"{name}.bias"][None, :]
    )


def _bn(x, sd, p):
    scale = sd[f"{p}.weight"] / np.sqrt(sd[f"{p}.running_var"] + 1e-5)
    shift = sd[f"{p}.bias"] - sd[f"{p}.running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def _alexnet_reference(sd, x):
    for (index, *_), (stride, pad, pool) in zip(ALEXNET_CONVS, ((4, 2, 1), (1, 2, 1), (1, 1, 0), (1, 1, 0), (1, 1, 1))):
        x = jax.nn.relu(_conv(x, sd[f"features.{index}.weight"], sd[f"features.{index}.bias"], stride, pad))
        x = _maxpool(x, 3, 2) if pool else x
    x = _adaptive_avg(x, 6).reshape(x.shape[0], -1)  # torch flattens (C, H, W)
    x = jax.nn.relu(_linear(x, sd, "classifier.1"))
    x = jax.nn.relu(_linear(x, sd, "classifier.4"))
    return _linear(x, sd, "classifier.6")


def _vgg16_reference(sd, x):
    for index, _, _, pool in _vgg16_conv_indices():
        x = jax.nn.relu(_conv(x, sd[f"features.{index}.weight"], sd[f"features.{index}.bias"], 1, 1))
        x = _maxpool(x, 2, 2) if pool else x
    x = _adaptive_avg(x, 7).reshape(x.shape[0], -1)
    x = jax.nn.relu(_linear(x, sd, "classifier.0"))
    x = jax.nn.relu(_linear(x, sd, "classifier.3"))
    return _linear(x, sd, "classifier.6")


def _resnet18_reference(sd, x):
    x = _maxpool(jax.nn.relu(_bn(_conv(x, sd["conv1.weight"], stride=2, pad=3), sd, "bn1")), 3, 2, 1)
    for i in range(1, 5):
        for j in range(2):
            p, stride = f"layer{i}.{j}", 2 if i > 1 and j == 0 else 1
            y = jax.nn.relu(_bn(_conv(x, sd[f"{p}.conv1.weight"], stride=stride, pad=1), sd, f"{p}.bn1"))
            y = _bn(_conv(y, sd[f"{p}.conv2.weight"], pad=1), sd, f"{p}.bn2")
            if f"{p}.downsample.0.weight" in sd:
                x = _bn(_conv(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1")
            x = jax.nn.relu(x + y)
    return _linear(x.mean((2, 3)), sd, "fc")


# --- tests ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet18_sd():
    return _random_state_dict(_resnet18_shapes(), seed=1)


def _write(sd, path):
    if path.suffix == ".npz":
        np.savez(path, **sd)
    else:
        safetensors.numpy.save_file(sd, path)


def _check_against_reference(name, sd, reference, tmp_path, suffix, size):
    path = tmp_path / f"{name}{suffix}"
    _write(sd, path)
    variables = nets.from_torchvision(name, nets.load_torchvision_state_dict(path), num_classes=NUM_CLASSES)
    x = np.random.default_rng(0).normal(size=(2, size, size + 16, 3)).astype(np.float32)
    with jax.default_matmul_precision("highest"):
        ours = nets.create_module(name, num_classes=NUM_CLASSES).apply(variables, jnp.asarray(x))
        ref = reference(sd, jnp.asarray(x.transpose(0, 3, 1, 2)))
    scale = float(jnp.abs(ref).max())
    assert scale > 1e-3  # the comparison means something
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_alexnet_import_matches_reference(tmp_path, suffix):
    # 128 px gives pool5 3x3, so the adaptive pool and the CHW->HWC permutation
    # of fc6 both matter.
    sd = _random_state_dict(_alexnet_shapes(), seed=0)
    _check_against_reference("alexnet", sd, _alexnet_reference, tmp_path, suffix, size=128)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_resnet18_import_matches_reference(tmp_path, suffix, resnet18_sd):
    _check_against_reference("resnet18", resnet18_sd, _resnet18_reference, tmp_path, suffix, size=64)


def test_vgg16_import_matches_reference(tmp_path):
    # 64 px gives pool5 2x2, expanded to 7x7 by the adaptive pool before fc6.
    sd = _random_state_dict(_vgg16_shapes(), seed=2)
    _check_against_reference("vgg16", sd, _vgg16_reference, tmp_path, ".safetensors", size=64)


def test_batchnorm_statistics_land_in_batch_stats(resnet18_sd):
    variables = nets.from_torchvision("resnet18", resnet18_sd, num_classes=NUM_CLASSES)
    stats = variables["batch_stats"]["layer2_0"]["downsample_bn"]
    np.testing.assert_array_equal(stats["var"], resnet18_sd["layer2.0.downsample.1.running_var"])
    np.testing.assert_array_equal(variables["params"]["bn1"]["scale"], resnet18_sd["bn1.weight"])


def test_missing_key_is_named(resnet18_sd):
    sd = {k: v for k, v in resnet18_sd.items() if k != "layer3.1.bn2.running_mean"}
    with pytest.raises(WeightImportError, match=r"missing key 'layer3.1.bn2.running_mean' \(expected shape \(256,\)\)"):
        nets.from_torchvision("resnet18", sd, num_classes=NUM_CLASSES)


def test_wrong_shape_is_named_with_both_shapes(resnet18_sd):
    sd = dict(resnet18_sd, **{"layer1.0.conv1.weight": np.zeros((64, 64, 1, 1), np.float32)})
    with pytest.raises(WeightImportError,
                       match=r"'layer1.0.conv1.weight': expected shape \(64, 64, 3, 3\), found \(64, 64, 1, 1\)"):
        nets.from_torchvision("resnet18", sd, num_classes=NUM_CLASSES)


def test_wrong_num_classes_and_unexpected_keys_are_named(resnet18_sd):
    sd = dict(resnet18_sd, **{"fc2.weight": np.zeros((3,), np.float32)})
    with pytest.raises(
        WeightImportError, match=r"(?s)'fc.weight': expected shape \(1000, 512\).*unexpected key 'fc2.weight'"
    ):
        nets.from_torchvision("resnet18", sd, num_classes=1000)


def test_pickles_and_unknown_layouts_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors or \.npz"):
        nets.load_torchvision_state_dict(tmp_path / "resnet18.pth")
    np.savez(tmp_path / "objects.npz", w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        nets.load_torchvision_state_dict(tmp_path / "objects.npz")
    with pytest.raises(ValueError, match="no weight layout for model 'small_cnn'"):
        nets.from_torchvision("small_cnn", {})
