"""The README's Python examples run as written, in order, and its shape comments hold."""

import pathlib
import re

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks' relative workdirs (runs/...) land here
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 6  # the tour: one example per family
    ns: dict = {}
    for number, block in enumerate(blocks):
        exec(compile(block, f"README.md[python block {number}]", "exec"), ns)
    assert ns["model"].layer_names(ns["x"])[:3] == ("conv1", "relu1", "pool1")
    assert ns["grads"]["relu4"].shape == ns["acts"]["relu4"].shape == (8, 8, 8, 128)
    assert ns["kernel"].shape == (3, 3, 64, 128)
    assert (ns["fields"]["relu3"].size, ns["fields"]["relu3"].stride) == ((33, 33), (8, 8))
    assert ns["plain"].activations(ns["jnp"].ones((1, 3, 8, 8)), "conv1")["conv1"].shape == (1, 4, 8, 8)
    assert ns["saliency"].shape == ns["ig"].shape == ns["smooth"].shape == (8, 64, 64, 3)
    assert ns["gap"].shape == (8,) and ns["cam"].shape == (8, 64, 64)
    assert ns["hits"].shape == (8,)
    assert ns["sanity"].spearman_abs.shape == (2, 8)
    assert ns["rendering"].images.shape == (2, 1, 32, 32, 3)
    assert ns["every"].images.shape == (16, 1, 1, 32, 32, 3)
    assert ns["top"].indices.shape == (64, 2)
    assert ns["dissection"]["relu4"].iou.shape == (128, 51)
    assert set(ns["dissection"]["relu4"].summary()["by_category"]["part"]) == {"detectors", "unique_concepts"}
    assert int(ns["state"].step) == 4
    assert ns["peaks"].positions.shape == (16, 128, 2)
    rows = ns["rows"]
    assert [(r["seed"], r["unit"]) for r in rows] == [(s, u) for s in (0, 1) for u in range(64)]
    assert len({r["group"] for r in rows}) == 2 and all(r["score"] == r["score"] for r in rows)
    source = ns["sweep"].InMemory({"init": ns["sweep"].Subject(ns["model"], ns["data"])})
    assert ns["sweep"].run(ns["grid"], "runs/sweep", source, progress=False) == rows  # read back, not measured


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make demo", "make test"]


def test_readme_is_a_front_door_not_a_reference():
    assert len(README.splitlines()) <= 200
    for page in re.findall(r"`(docs/[\w.]+\.md)`", README):
        assert (pathlib.Path(__file__).parent.parent / page).exists(), page
