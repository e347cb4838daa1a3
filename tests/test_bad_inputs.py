"""Inputs that were silently wrong or failed cryptically: each a named error, or a documented behaviour.

One test per case (issue 16): the error's type and that its message names the
argument and what was expected; for a traced value, which cannot be checked,
the documented NaN.
"""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from interp import attribution, cli, nets
from interp import featviz as fv
from interp.data import SynthParts, in_memory
from interp.data.cub import CUB200
from tests.data.fixtures import write_cub


@pytest.fixture(scope="module")
def model():
    return nets.create("small_cnn", 6, key=jax.random.key(0), input_size=32)


@pytest.fixture(scope="module")
def images():
    return jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))


@pytest.fixture(scope="module")
def linen():
    module = nets.create_module("small_cnn", 6)
    return module, module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)


def _render(model, objective):
    # Raises while the render is traced, before anything compiles.
    return fv.render(model, objective, key=jax.random.key(0), param=fv.image(32), steps=1, transforms=fv.identity())


# Feature-visualization objectives.

def test_a_channel_beyond_the_layer_names_the_layer_and_its_channel_count(model):
    with pytest.raises(ValueError, match=r"channel_index: 500 .* layer 'conv3', which has 64 channels"):
        _render(model, fv.channel("conv3", 500))
    with pytest.raises(ValueError, match="channel_index: 500"):
        _render(model, "conv3:500")


def test_a_class_beyond_the_logits_names_the_class_count(model):
    with pytest.raises(ValueError, match=r"class_index: 6 .* 'logits', which has 6 classes"):
        _render(model, fv.class_logit(6))


def test_a_neuron_position_outside_the_map_is_an_error_not_a_clamp(model):
    with pytest.raises(ValueError, match=r"position: 40 .* layer 'conv3', which has 4 rows"):
        _render(model, fv.neuron("conv3", 5, (40, 0)))
    with pytest.raises(ValueError, match=r"position: 9 .* which has 4 columns"):
        _render(model, fv.neuron("conv3", 5, (0, 9)))


def test_a_non_integer_index_is_refused_when_the_objective_is_built():
    with pytest.raises(ValueError, match="channel_index: expected an integer index"):
        fv.channel("conv3", 2.5)
    with pytest.raises(ValueError, match="position: expected an integer index"):
        fv.neuron("conv3", 1, (1.5, 2))


def test_traced_indices_out_of_range_score_nan_and_in_range_ones_score_as_concrete(model, images):
    acts = model.activations(images, "conv3")
    channel = jax.jit(lambda c: fv.channel("conv3", c)(acts))
    neuron = jax.jit(lambda r: fv.neuron("conv3", 5, (r, 1))(acts))
    assert np.isnan(channel(500)).all() and np.isnan(neuron(40)).all()
    np.testing.assert_allclose(channel(7), fv.channel("conv3", 7)(acts), rtol=1e-6)
    np.testing.assert_allclose(neuron(2), fv.neuron("conv3", 5, (2, 1))(acts), rtol=1e-6)


# Dataset examples and data sources.

def test_more_examples_than_images_names_k_and_the_image_count(model, images):
    four = in_memory(jnp.concatenate([images, images]))
    too_many = r"k: expected at most the 4 candidates .*'images' \(4 images searched\), got 10"
    with pytest.raises(ValueError, match=too_many):
        fv.dataset_examples(model, "conv3", four, k=10)
    # Patches: every position of conv3's 4x4 map is a candidate.
    top = fv.dataset_examples(model, "conv3", four, k=10, mode="patches")
    assert (np.asarray(top.indices) >= 0).all()
    with pytest.raises(ValueError, match=r"k: .* 64 candidates .*4 images x 16 positions"):
        fv.dataset_examples(model, "conv3", four, k=65, mode="patches")


def test_float_indices_are_refused_not_truncated(tmp_path):
    with pytest.raises(ValueError, match="indices: expected integer example indices, got dtype float64"):
        SynthParts(image_size=32).batch(np.array([1.7, 2.2]))
    with pytest.raises(ValueError, match="indices: expected integer"):
        in_memory(np.zeros((4, 2))).batch([0.5])
    root = tmp_path / "CUB_200_2011"
    write_cub(root)
    with pytest.raises(ValueError, match="indices: expected integer"):
        CUB200(root).batch([0.9], image_size=8)
    with pytest.raises(ValueError, match="index: expected integer"):
        CUB200(root)[1.5]


def test_a_truncated_jpeg_names_its_file(tmp_path):
    root = tmp_path / "CUB_200_2011"
    write_cub(root)
    reader = CUB200(root, split="all")
    path = root / "images" / (root / "images.txt").read_text().split()[1]
    encoded = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(encoded, "JPEG")
    path.write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])
    with pytest.raises(OSError, match=rf"CUB-200-2011: cannot decode image {path}.*corrupt or truncated"):
        reader[0]


# The command line and the zoo.

@pytest.mark.parametrize("option, value", [("--size", "0"), ("--size", "-5"), ("--num-classes", "0")])
def test_the_cli_refuses_non_positive_sizes_naming_the_option(option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["layers", "small_cnn", option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: expected a positive int, got '{value}'" in capsys.readouterr().err


def test_layers_and_the_zoo_refuse_non_positive_sizes():
    with pytest.raises(ValueError, match="size: expected a positive int, got 0"):
        cli.layers("small_cnn", 0, 6)
    with pytest.raises(ValueError, match="num_classes: expected a positive int, got 0"):
        nets.create_module("small_cnn", 0)
    with pytest.raises(ValueError, match="input_size: expected a positive int, got -1"):
        nets.create("small_cnn", 6, key=jax.random.key(0), input_size=-1)


# Targets under jit, empty batches, layouts and Linen modules.

@pytest.mark.parametrize("build", [attribution.saliency, lambda m: attribution.grad_cam(m, "conv3"),
                                   lambda m: attribution.cam(m, "relu4")], ids=["saliency", "grad_cam", "cam"])
def test_a_traced_target_out_of_range_gives_nan_maps_and_one_in_range_the_eager_map(model, images, build):
    method = build(model)
    jitted = jax.jit(method)
    mixed = jitted(images, jnp.array([2, -1]))  # only the second example's target is out of range
    np.testing.assert_allclose(mixed[0], method(images, 2)[0], rtol=1e-4, atol=1e-7)
    # The NaN gradient reaches the input wherever ReLUs pass it: never a silent map of zeros.
    assert np.isnan(mixed[1]).mean() > 0.5
    if build is not attribution.saliency:  # channel weights are means of (or taken at) the NaN
        assert np.isnan(mixed[1]).all()


def test_an_empty_batch_is_named(model, linen):
    empty = jnp.zeros((0, 32, 32, 3))
    module, variables = linen
    for call in (lambda: model(empty), lambda: attribution.saliency(model)(empty, 0),
                 lambda: attribution.saliency(lambda x: module.apply(variables, x, train=False))(empty, 0),
                 lambda: fv.top_channels(model, "conv3", empty, (1, 1))):
        with pytest.raises(ValueError, match=r"x: expected a non-empty batch, got shape \[0, 32, 32, 3\]"):
            call()


def test_nchw_images_are_named_for_zoo_models_and_plain_functions(model, linen):
    nchw = jnp.zeros((2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"shape \[batch, \*, \*, 3\], got \[2, 3, 32, 32\], which looks like NCHW"):
        model(nchw)
    module, variables = linen

    def plain(x):
        return module.apply(variables, x, train=False)

    for call in (lambda: nets.from_function(plain)(nchw), lambda: attribution.saliency(plain)(nchw, 0),
                 lambda: attribution.integrated_gradients(plain, steps=2)(nchw, 0)):
        with pytest.raises(ValueError, match=r"x: expected NHWC .*\[\d+, 3, 32, 32\], which looks like NCHW") as info:
            call()
        assert info.value.__cause__ is not None  # Flax's own error stays attached


def test_a_linen_module_without_variables_says_how_to_wrap_it(linen):
    module, variables = linen
    x = jnp.zeros((1, 32, 32, 3))
    for build in (attribution.saliency, attribution.integrated_gradients, attribution.guided_backprop,
                  attribution.occlusion, nets.from_function):
        with pytest.raises(TypeError, match=r"fn: got a Linen module \(SmallCNN\).*from_linen\(module, variables\)"):
            build(module)
    with pytest.raises(ValueError, match="variables: a Linen module .*nets.from_linen"):
        attribution.grad_cam(module, "conv3")
    with pytest.raises(TypeError, match="variables: expected the Linen variables .* got NoneType"):
        nets.from_linen(module, None)
    with pytest.raises(ValueError, match=r"variables: .*not variables\['params'\]"):
        nets.from_linen(module, variables["params"], train=False)(x)
