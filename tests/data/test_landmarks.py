"""select_landmarks: the interpretable-CNN landmarks of CUB (and of PASCAL-Part groups)."""

import jax.numpy as jnp
import numpy as np
import pytest

from interp.data.cub import CUB200
from interp.data.landmarks import CUB_ICNN_PARTS, select_landmarks
from interp.data.voc_part import VOCPart
from tests.data.fixtures import write_cub, write_voc_part


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub") / "CUB_200_2011"
    write_cub(root)
    return CUB200(root, split="all")


def test_cub_icnn_parts_are_back_forehead_tail(cub):
    assert [cub.part_names[i - 1] for i in CUB_ICNN_PARTS] == ["back", "forehead", "tail"]


def test_select_on_a_cub_batch(cub):
    batch = cub.batch([0, 3, 5], image_size=16)
    selected = select_landmarks(batch, CUB_ICNN_PARTS)
    np.testing.assert_array_equal(selected["landmarks"], batch["landmarks"][:, [0, 5, 13]])
    np.testing.assert_array_equal(selected["landmark_visible"], batch["landmark_visible"][:, [0, 5, 13]])
    assert selected["landmarks"].shape == (3, 3, 2) and selected["landmark_visible"].shape == (3, 3)
    assert selected["image"] is batch["image"] and selected["label"] is batch["label"]
    assert batch["landmarks"].shape == (3, 15, 2)  # the input is left as it was


def test_select_on_one_example_in_the_order_given(cub):
    example = cub[2]
    selected = select_landmarks(example, (14, 1))
    np.testing.assert_array_equal(selected["landmarks"], example["landmarks"][[13, 0]])
    np.testing.assert_array_equal(selected["landmark_visible"], example["landmark_visible"][[13, 0]])


def test_select_on_jax_arrays(cub):
    batch = cub.batch([1, 2], image_size=8)
    on_device = {k: jnp.asarray(batch[k]) for k in ("landmarks", "landmark_visible")}
    selected = select_landmarks(on_device, CUB_ICNN_PARTS)
    np.testing.assert_array_equal(np.asarray(selected["landmarks"]), batch["landmarks"][:, [0, 5, 13]])


def test_select_voc_part_groups(tmp_path):
    write_voc_part(tmp_path)
    src = VOCPart(tmp_path, classes=["cat"])
    head_tail = select_landmarks(src[0], (1, 4))
    np.testing.assert_allclose(head_tail["landmarks"], [[4.5, 4.5], [8.5, 34.5]])


@pytest.mark.parametrize("ids, message", [((0, 6), r"part ids \[0\]; expected 1-based ids in 1\.\.15"),
                                          ((16,), r"part ids \[16\]"), ((), r"\(none given\)")])
def test_bad_ids_are_named(cub, ids, message):
    with pytest.raises(ValueError, match=message):
        select_landmarks(cub[0], ids)


def test_missing_keys_are_named():
    with pytest.raises(KeyError, match="'landmark_visible'"):
        select_landmarks({"landmarks": np.zeros((3, 2))}, (1,))
