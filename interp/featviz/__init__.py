"""Feature visualization: objectives with an algebra, parameterizations, transforms, rendering.

    from interp import featviz as fv
    obj = fv.channel("relu3", 5) - 1e-3 * fv.total_variation()
    r = fv.render(model, obj, key=jax.random.key(0), param=fv.image(64), steps=256)
    r.images[-1]    # [1, 64, 64, 3] in [0, 1]
"""

from interp.featviz.empirical_rf import empirical_receptive_field
from interp.featviz.examples import crop_patches, dataset_examples
from interp.featviz.inversion import (
    Inverter,
    UpConv,
    UpConvDecoder,
    invert_layers,
    mean_image_error,
    reconstruction_error,
    train_inverter,
)
from interp.featviz.objectives import (
    INPUT,
    Objective,
    activation_match,
    alignment,
    as_objective,
    blur_penalty,
    channel,
    class_logit,
    class_probability,
    deepdream,
    direction,
    diversity,
    l1,
    l2,
    neuron,
    objective_sum,
    total_variation,
)
from interp.featviz.param import (
    Param,
    color_correlation,
    fourier,
    image,
    pixel,
    spectrum_scale,
)
from interp.featviz.render import (
    Rendering,
    make_render,
    make_render_each,
    render,
    render_each,
)
from interp.featviz.semantic import (
    SemanticDictionary,
    activation_grid,
    grid_to_image,
    semantic_dictionary,
    top_channels,
)
from interp.featviz.transforms import (
    Transform,
    compose,
    identity,
    jitter,
    pad,
    random_rotate,
    random_scale,
    random_scale_rotate,
    standard_transforms,
)

__all__ = [
    "INPUT",
    "Inverter",
    "Objective",
    "Param",
    "Rendering",
    "SemanticDictionary",
    "Transform",
    "UpConv",
    "UpConvDecoder",
    "activation_grid",
    "activation_match",
    "alignment",
    "as_objective",
    "blur_penalty",
    "channel",
    "class_logit",
    "class_probability",
    "color_correlation",
    "compose",
    "crop_patches",
    "dataset_examples",
    "deepdream",
    "direction",
    "diversity",
    "empirical_receptive_field",
    "fourier",
    "grid_to_image",
    "identity",
    "image",
    "invert_layers",
    "jitter",
    "l1",
    "l2",
    "make_render",
    "make_render_each",
    "mean_image_error",
    "neuron",
    "objective_sum",
    "pad",
    "pixel",
    "random_rotate",
    "random_scale",
    "random_scale_rotate",
    "reconstruction_error",
    "render",
    "render_each",
    "semantic_dictionary",
    "spectrum_scale",
    "standard_transforms",
    "top_channels",
    "total_variation",
    "train_inverter",
]
