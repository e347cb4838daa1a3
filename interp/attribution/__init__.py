"""Attribution methods as function transforms: `method(fn, ...)(x, target)`.

See `interp.attribution._core` for the conventions every method follows.
"""

from interp.attribution.cam import cam, grad_cam, grad_cam_plus_plus
from interp.attribution.gradients import gradient_x_input, saliency
from interp.attribution.guided import deconvnet, guided_backprop, guided_grad_cam
from interp.attribution.integrated import integrated_gradients
from interp.attribution.occlusion import occlusion
from interp.attribution.smooth import smooth_grad

__all__ = [
    "cam",
    "deconvnet",
    "grad_cam",
    "grad_cam_plus_plus",
    "gradient_x_input",
    "guided_backprop",
    "guided_grad_cam",
    "integrated_gradients",
    "occlusion",
    "saliency",
    "smooth_grad",
]
