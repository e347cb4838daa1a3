"""The model zoo, layer names, receptive fields and weight import.

`create(name, num_classes, key=...)` gives a zoo network as a ready `Model`;
`create_module(name, num_classes)` its Linen module (to train or to wrap). Every
zoo model is a Flax Linen module called as `apply(variables, x, train)` on
NHWC images, and marks its layer outputs with `tap(x, name)`; the names follow
the papers (VGG-16 `conv5_3`, ResNet `layer4.1.conv2`, ...). Any model's named
layers have a theoretical receptive field: `nets.receptive_fields(model, x)`.
"""

from interp.nets._tap import tap
from interp.nets.adapter import Model, as_model, check_input, from_function, from_linen, from_nnx
from interp.nets.alexnet import AlexNet
from interp.nets.receptive_field import ReceptiveField, receptive_fields
from interp.nets.resnet import BasicBlock, Bottleneck, ResNet, ResNet18, ResNet50
from interp.nets.small_cnn import SmallCNN
from interp.nets.vgg import VGG16, VGGM, VGGS, ChatfieldCNN
from interp.nets.weights import from_torchvision, load_torchvision_state_dict
from interp.nets.zoo import create, create_module, names, paper_input_size

__all__ = [
    "Model",
    "ReceptiveField",
    "as_model",
    "check_input",
    "from_function",
    "from_linen",
    "from_nnx",
    "AlexNet",
    "BasicBlock",
    "Bottleneck",
    "ChatfieldCNN",
    "ResNet",
    "ResNet18",
    "ResNet50",
    "SmallCNN",
    "VGG16",
    "VGGM",
    "VGGS",
    "create",
    "create_module",
    "from_torchvision",
    "load_torchvision_state_dict",
    "names",
    "paper_input_size",
    "receptive_fields",
    "tap",
]
