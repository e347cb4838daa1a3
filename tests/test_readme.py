"""The README's Python examples run as written, and its shape comments hold."""

import pathlib
import re

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def test_readme_python_blocks_run_in_order():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for number, block in enumerate(blocks):
        exec(compile(block, f"README.md[python block {number}]", "exec"), namespace)
    assert namespace["model"].activations(namespace["jnp"].ones((1, 3, 8, 8)), "conv1")["conv1"].shape == (1, 4, 8, 8)
    assert namespace["grads"]["relu4"].shape == namespace["acts"]["relu4"].shape == (8, 8, 8, 128)
    assert namespace["rendering"].images.shape == (2, 1, 32, 32, 3)
    assert namespace["every_channel"].images.shape == (16, 1, 1, 32, 32, 3)
    field = namespace["fields"]["relu3"]
    assert (field.size, field.stride) == ((33, 33), (8, 8))
    assert namespace["top"].indices.shape == (64, 2)
    relu4 = namespace["dissection"]["relu4"]
    assert relu4.iou.shape == (128, 51)
    assert set(relu4.summary()["by_category"]["color"]) == {"detectors", "unique_concepts"}


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make demo", "make test"]
