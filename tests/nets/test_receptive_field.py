"""Receptive fields: published values, hand derivations, gradient supports."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from interp import nets
from interp.nets import ReceptiveField, receptive_fields


@pytest.fixture(scope="module")
def small_cnn():
    """A randomly initialized SmallCNN; its params fit any input size (GAP head)."""
    module = nets.create_module("small_cnn", num_classes=3)
    return nets.from_linen(module, jax.jit(module.init)(jax.random.key(9), jnp.zeros((1, 32, 32, 3))))


def chain(layers):
    """(size, stride, start) after each (kernel, stride, pad) layer: the textbook recurrence."""
    size, jump, start, out = 1, 1, 0, []
    for kernel, stride, pad in layers:
        start, size, jump = start - pad * jump, size + (kernel - 1) * jump, jump * stride
        out.append((size, jump, start))
    return out


def zoo_fields(name, size=None):
    """Fields of a zoo model traced on abstract params (no weights allocated)."""
    module = nets.create_module(name, num_classes=10)
    x = jax.ShapeDtypeStruct((1, *(size or nets.paper_input_size(name)), 3), jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    return receptive_fields(nets.from_linen(module, variables), x)


def as_tuple(rf):
    assert rf.size[0] == rf.size[1] and rf.stride[0] == rf.stride[1] and rf.start[0] == rf.start[1], rf
    return rf.size[0], rf.stride[0], rf.start[0]


CONV3 = (3, 1, 1)

# Each zoo net as its main path of (layer name, (kernel, stride, pad)); ReLUs and
# norms share the field of the layer before them. In a residual block the main
# path's field holds the shortcut's (same center, larger size).
VGG16_PATH = [
    (name, spec)
    for b, n in enumerate((2, 2, 3, 3, 3), start=1)
    for name, spec in [*((f"conv{b}_{i}", CONV3) for i in range(1, n + 1)), (f"pool{b}", (2, 2, 0))]
]
ALEXNET_PATH = [
    ("conv1", (11, 4, 2)), ("pool1", (3, 2, 0)), ("conv2", (5, 1, 2)), ("pool2", (3, 2, 0)),
    ("conv3", CONV3), ("conv4", CONV3), ("conv5", CONV3), ("pool5", (3, 2, 0)),
]
VGG_M_PATH = [
    ("conv1", (7, 2, 0)), ("pool1", (3, 2, 0)), ("conv2", (5, 2, 1)), ("pool2", (3, 2, 0)),
    ("conv3", CONV3), ("conv4", CONV3), ("conv5", CONV3), ("pool5", (3, 2, 0)),
]
VGG_S_PATH = [
    ("conv1", (7, 2, 0)), ("pool1", (3, 3, 0)), ("conv2", (5, 1, 1)), ("pool2", (2, 2, 0)),
    ("conv3", CONV3), ("conv4", CONV3), ("conv5", CONV3), ("pool5", (3, 3, 0)),
]


def resnet_path(bottleneck, blocks):
    path = [("conv1", (7, 2, 3)), ("maxpool", (3, 2, 1))]
    for i, n in enumerate(blocks, start=1):
        for j in range(n):
            stride = 2 if i > 1 and j == 0 else 1
            convs = [(1, 1, 0), (3, stride, 1), (1, 1, 0)] if bottleneck else [(3, stride, 1), CONV3]
            path += [(f"layer{i}.{j}.conv{c}", spec) for c, spec in enumerate(convs, start=1)]
            path.append((f"layer{i}.{j}", (1, 1, 0)))
    return path


PATHS = {
    "vgg16": VGG16_PATH,
    "alexnet": ALEXNET_PATH,
    "vgg_m": VGG_M_PATH,
    "vgg_s": VGG_S_PATH,
    "resnet18": resnet_path(False, (2, 2, 2, 2)),
    "resnet50": resnet_path(True, (3, 4, 6, 3)),
}


@pytest.mark.parametrize(
    "name, layer, size, stride",
    [
        ("vgg16", "conv5_3", 196, 16),
        ("vgg16", "pool5", 212, 32),
        ("alexnet", "conv1", 11, 4),
        ("alexnet", "pool5", 195, 32),
        ("resnet18", "layer4", 435, 32),
        # torchvision's ResNet-50 strides its 3x3 convs ("v1.5"): 427; the
        # original v1 (stride on the first 1x1) has the often quoted 483.
        ("resnet50", "layer4", 427, 32),
    ],
)
def test_published_receptive_fields(name, layer, size, stride):
    rf = zoo_fields(name)[layer]
    assert rf.size == (size, size) and rf.stride == (stride, stride), rf


@pytest.mark.parametrize("name", sorted(PATHS))
def test_zoo_fields_follow_the_recurrence_and_heads_are_global(name):
    fields = zoo_fields(name)
    names, specs = zip(*PATHS[name])
    for layer, expected in zip(names, chain(specs)):
        assert as_tuple(fields[layer]) == expected, (layer, fields[layer], expected)
    head = "avgpool" if name.startswith("resnet") else "fc6"
    side = nets.paper_input_size(name)
    assert fields[head].is_global and fields[head].size == side and fields[head].stride == (0, 0)
    assert fields["logits"].is_global
    assert not any(rf.is_global for layer, rf in fields.items() if layer in names)


def test_small_cnn_every_layer_by_hand():
    # conv1 3x3/2 pad 1: 3 px, stride 2, from -1. pool1 2x2/2 adds 1 step of 2:
    # 5 px, stride 4. conv2 3x3 adds 2 steps of 4 (13 px), pad 1 moves the
    # start by 4 to -5; pool2 adds 4: 17 px, stride 8; conv3, conv4 add 16 each
    # and move the start by 8 each.
    expected = {
        "conv1": (3, 2, -1), "relu1": (3, 2, -1), "pool1": (5, 4, -1),
        "conv2": (13, 4, -5), "relu2": (13, 4, -5), "pool2": (17, 8, -5),
        "conv3": (33, 8, -13), "relu3": (33, 8, -13), "conv4": (49, 8, -21), "relu4": (49, 8, -21),
    }
    fields = zoo_fields("small_cnn", size=(64, 48))
    assert list(fields) == [*expected, "gap", "logits"]
    for layer, (size, stride, start) in expected.items():
        assert fields[layer] == ReceptiveField((size, size), (stride, stride), (start, start)), layer
    for layer in ("gap", "logits"):
        assert fields[layer] == ReceptiveField((64, 48), (0, 0), (0, 0), is_global=True)


def test_concrete_and_abstract_inputs_agree(small_cnn):
    x, model = jnp.zeros((2, 40, 40, 3)), small_cnn
    assert receptive_fields(model, x) == receptive_fields(model, jax.ShapeDtypeStruct(x.shape, x.dtype))
    assert model.receptive_fields(x, spatial_axes=(1, 2)) == receptive_fields(model, x)


def test_center_and_box():
    rf = ReceptiveField(size=(5, 4), stride=(2, 3), start=(-1, -2))
    assert rf.center(0, 0) == (1.0, -0.5)
    assert rf.center(3, 2) == (7.0, 5.5)
    assert rf.box(0, 0) == (-1, -2, 4, 2)
    assert rf.box(0, 0, image_size=(10, 10)) == (0, 0, 4, 2)
    assert rf.box(5, 3, image_size=(10, 10)) == (9, 7, 10, 10)
    tops, lefts, _, _ = rf.box(jnp.arange(3), jnp.arange(3))
    np.testing.assert_array_equal(tops, [-1, 1, 3])
    np.testing.assert_array_equal(lefts, [-2, 1, 4])


def check_supports(model, x, fields, layers, exact):
    """Compares each unit's input-gradient support (channel 0) with its clipped box.

    One Jacobian for all `layers`: [h, w] units of each against the [H, W, C] input.
    """
    jacs = jax.jit(jax.jacrev(lambda x: {n: a[0, :, :, 0] for n, a in model.activations(x, layers).items()}))(x)
    for layer in layers:
        support = np.abs(np.asarray(jacs[layer]))[:, :, 0].sum(-1) > 0  # [h, w, H, W]
        h, w, big_h, big_w = support.shape
        # A ReLU unit that is off, or a pool window of such units, has no gradient.
        assert exact or support.any(axis=(2, 3)).mean() > 0.25, layer
        for i in range(h):
            for j in range(w):
                top, left, bottom, right = fields[layer].box(i, j, image_size=(big_h, big_w))
                box = np.zeros((big_h, big_w), bool)
                box[top:bottom, left:right] = True
                if exact:
                    np.testing.assert_array_equal(support[i, j], box, err_msg=f"{layer} unit {(i, j)}")
                else:
                    assert not (support[i, j] & ~box).any(), (layer, i, j)


def test_gradient_support_equals_box_without_pools():
    module = nets.create_module("small_cnn", num_classes=3, channels=(16, 16, 16, 16), pools=(False,) * 4)
    x = jax.random.uniform(jax.random.key(1), (1, 24, 24, 3))
    model = nets.from_linen(module, jax.jit(module.init)(jax.random.key(2), x))
    fields = receptive_fields(model, x)
    # Conv outputs, not ReLUs: a ReLU unit that is off has no gradient at all.
    check_supports(model, x, fields, ("conv1", "conv2", "conv3", "conv4"), exact=True)


def linear_stack(params, x):
    """Linear layers of every kind the interpreter knows, so supports are exact boxes."""
    dn = ("NHWC", "HWIO", "NHWC")
    a = nets.tap(lax.conv_general_dilated(x, params["a"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn), "a")
    b = lax.conv_general_dilated(a, params["b"], (2, 2), ((2, 2), (2, 2)), rhs_dilation=(2, 2), dimension_numbers=dn)
    b = nets.tap(b + params["bias"], "b")
    c = nets.tap(lax.reduce_window(b, 0.0, lax.add, (1, 2, 2, 1), (1, 1, 1, 1), "VALID") / 4, "c")
    # The slices start at or after the padding, so no unit of d is padding alone.
    d = nets.tap(jnp.pad(c, ((0, 0), (1, 0), (1, 0), (0, 0)))[:, 1::2, 3::2], "d")
    shortcut = lax.conv_general_dilated(d, params["e"], (1, 1), ((0, 0), (0, 0)), dimension_numbers=dn)
    e = nets.tap(d[:, 1:-1, 1:-1] + shortcut, "e")
    return nets.tap(jnp.mean(e, axis=(1, 2)) @ params["head"], "head")


def test_gradient_support_equals_box_on_a_linear_stack():
    keys = jax.random.split(jax.random.key(3), 5)
    params = {
        "a": jax.random.normal(keys[0], (3, 3, 3, 4)),
        "b": jax.random.normal(keys[1], (3, 3, 4, 4)),
        "bias": jnp.ones((1, 1, 1, 4)),
        "e": jax.random.normal(keys[2], (3, 3, 4, 4)),
        "head": jax.random.normal(keys[3], (4, 2)),
    }
    model = nets.from_function(linear_stack, params)
    x = jax.random.uniform(keys[4], (1, 20, 20, 3))
    fields = receptive_fields(model, x)
    # a: 3 px from -1. b: dilated 3x3 adds 2 * 2, pad 2 moves the start by 2,
    # stride 2. c: a 2x2 window adds 2. d: the pad moves the start back by 2
    # step, the slice forward by 1 (h) / 3 (w) steps; stride 4. e: a 3x3 conv
    # on d (17 px), unioned with d cropped by one unit (9 px, one stride in).
    assert fields["a"] == ReceptiveField((3, 3), (1, 1), (-1, -1))
    assert fields["b"] == ReceptiveField((7, 7), (2, 2), (-3, -3))
    assert fields["c"] == ReceptiveField((9, 9), (2, 2), (-3, -3))
    assert fields["d"] == ReceptiveField((9, 9), (4, 4), (-3, 1))
    assert fields["e"] == ReceptiveField((17, 17), (4, 4), (-3, 1))
    # d starts at column 3 of the padded c, so no unit sees column 0: not global.
    assert fields["head"] == ReceptiveField((20, 19), (0, 0), (0, 1), is_global=False)
    check_supports(model, x, fields, tuple("abcde"), exact=True)


def test_gradient_support_lies_in_box_with_pools(small_cnn):
    x, model = jax.random.uniform(jax.random.key(4), (1, 32, 32, 3)), small_cnn
    fields = receptive_fields(model, x)
    check_supports(model, x, fields, ("pool1", "pool2", "relu3"), exact=False)


def test_nchw_function_with_spatial_axes():
    def net(params, x):
        h = nets.tap(jax.nn.relu(lax.conv(x, params["w"], (2, 2), "SAME")), "conv1")
        return nets.tap(h.mean(axis=2) @ params["v"], "rows")  # mean over rows, then columns contracted

    model = nets.from_function(net, {"w": jnp.ones((4, 3, 3, 3)), "v": jnp.ones((5, 2))})
    fields = receptive_fields(model, jax.ShapeDtypeStruct((1, 3, 10, 10), jnp.float32), spatial_axes=(2, 3))
    assert fields["conv1"] == ReceptiveField((3, 3), (2, 2), (0, 0))  # SAME on 10 px, stride 2: pad (0, 1)
    assert fields["rows"] == ReceptiveField((10, 10), (0, 0), (0, 0), is_global=True)
    with pytest.raises(ValueError, match="spatial_axes"):
        receptive_fields(model, jnp.ones((1, 3, 10, 10)), spatial_axes=(0, 1))


@pytest.mark.parametrize("fn, match", [
    (lambda x: nets.tap(jnp.flip(x, axis=1), "flipped"), "'rev'"),
    (lambda x: nets.tap(jnp.cumsum(x, axis=2), "cumsum"), "cumsum"),
    (lambda x: nets.tap(x[:, ::2, ::2] + x[:, :4, :4], "mixed"), "different strides"),
])
def test_unknown_or_non_affine_operations_raise(fn, match):
    with pytest.raises(NotImplementedError, match=match):
        receptive_fields(fn, jnp.ones((1, 8, 8, 3)))


def test_fields_pass_through_remat_custom_vjp_and_jit():
    @jax.custom_vjp
    def identity(x):
        return x

    identity.defvjp(lambda x: (x, None), lambda _, g: (g,))

    def pool(x):  # 3x3/2 SAME on 9 px: 5 outputs, padding (1, 1)
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")

    def net(x):
        h = nets.tap(jax.checkpoint(pool)(identity(x)), "pool")
        return jax.jit(lambda h: nets.tap(h[:, 1:, 1:], "crop"))(h)  # a tap inside a jit

    fields = receptive_fields(net, jnp.ones((1, 9, 9, 2)))
    assert fields == {
        "pool": ReceptiveField((3, 3), (2, 2), (-1, -1)),
        "crop": ReceptiveField((3, 3), (2, 2), (1, 1)),
    }


def test_unknown_primitives_after_global_pooling_are_fine():
    fields = receptive_fields(lambda x: nets.tap(jnp.cumsum(jnp.flip(x.mean(axis=(1, 2)), -1), -1), "head"),
                              jnp.ones((1, 8, 6, 3)))
    assert fields["head"] == ReceptiveField((8, 6), (0, 0), (0, 0), is_global=True)


def test_a_gate_under_stop_gradient_sees_no_pixel():
    """A map scaled by a statistic of the whole map: under stop_gradient the gradient, and so the field, stays
    local (the interpretable conv's mask); without it every unit depends on every pixel."""

    def gated(stop):
        def fn(x):
            conv = nets.tap(lax.conv_general_dilated(x, jnp.ones((3, 3, 3, 2)), (1, 1), "SAME",
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC")), "conv")
            gate = conv.mean((1, 2), keepdims=True)
            return nets.tap(conv * (jax.lax.stop_gradient(gate) if stop else gate), "gated")

        return nets.from_function(fn)

    x = jnp.ones((1, 16, 16, 3))
    local, spread = (receptive_fields(gated(stop), x)["gated"] for stop in (True, False))
    assert local == ReceptiveField((3, 3), (1, 1), (-1, -1)) and spread.is_global
    # The field is the gradient's support: one unit's gradient reaches only its 3 x 3 window.
    grad = jax.grad(lambda x: gated(True)(x)[0, 8, 8, 0])(x)
    assert set(zip(*np.nonzero(np.asarray(grad)[0, :, :, 0]))) == {(r, c) for r in (7, 8, 9) for c in (7, 8, 9)}
