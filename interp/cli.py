"""The `interp` command.

    interp layers vgg16 --size 224     # every named layer of a zoo model and its shape
"""

import argparse

import jax
import jax.numpy as jnp

from interp._checks import check_positive_int
from interp.nets import adapter, zoo


def layers(name: str, size: int | None, num_classes: int) -> str:
    """A table of the named layers of zoo model `name` at input size `size` (None: the paper's).

    Raises:
      ValueError: an unknown `name`, or `size` or `num_classes` not a positive int.
    """
    module = zoo.create_module(name, num_classes=num_classes)
    size = zoo.paper_input_size(name)[0] if size is None else check_positive_int("size", size)
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    # eval_shape: the shapes of a VGG-16 without allocating its 138M weights.
    variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(x.shape), train=False))
    shapes = adapter.from_linen(module, variables).layer_shapes(x)
    width = max(map(len, shapes))
    return "\n".join(f"{n:<{width}}  {list(s.shape[1:])}" for n, s in shapes.items())


def _positive_int(text: str) -> int:
    """argparse's `type` for a positive int, so a bad value is a usage error naming its option."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="interp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    layer_cmd = commands.add_parser("layers", help="list the named layers of a zoo model")
    layer_cmd.add_argument("model", choices=zoo.names())
    layer_cmd.add_argument("--size", type=_positive_int, default=None, help="input side (default: the paper's)")
    layer_cmd.add_argument("--num-classes", type=_positive_int, default=1000)
    args = parser.parse_args(argv)
    if args.command == "layers":
        print(layers(args.model, args.size, args.num_classes))


if __name__ == "__main__":
    main()
