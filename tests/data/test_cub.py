"""CUB-200-2011 folder reader: annotations read back exactly, resized consistently."""

import numpy as np
import pytest

from interp.data import Reader, check_source, sized
from interp.data.cub import CUB200
from tests.data.fixtures import write_cub


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub") / "CUB_200_2011"
    return root, write_cub(root)


def _expected_bbox(xywh):
    x, y, w, h = xywh
    return np.array([y, x, y + h, x + w], np.float32)


@pytest.mark.parametrize("split, ids", [("train", [1, 3, 5]), ("test", [2, 4, 6]), ("all", [1, 2, 3, 4, 5, 6])])
def test_split_selection(cub, split, ids):
    src = CUB200(cub[0], split=split)
    assert src.image_ids == ids
    assert len(src) == len(ids)
    assert [int(src[i]["image_id"]) for i in range(len(src))] == ids


def test_examples_read_back_exactly(cub):
    root, truth = cub
    src = CUB200(root, split="all")
    assert isinstance(src, Reader)
    assert src.num_classes == 3 and list(src.class_names) == truth["class_names"]
    assert list(src.part_names) == truth["part_names"]
    for i in range(len(src)):
        ex = src[i]
        np.testing.assert_array_equal(ex["image"], truth["images"][i])
        assert ex["image"].dtype == np.uint8 and ex["image"].shape[-1] == 3  # grayscale image 0 too
        assert ex["label"] == truth["labels"][i] and ex["label"].dtype == np.int32
        np.testing.assert_array_equal(ex["bbox"], _expected_bbox(truth["xywh"][i]))
        np.testing.assert_array_equal(ex["landmarks"], truth["landmarks"][i])
        np.testing.assert_array_equal(ex["landmark_visible"], truth["visible"][i])
        assert ex["landmarks"].shape == (15, 2) and ex["landmarks"].dtype == np.float32


def test_batch_scales_landmarks_and_boxes_to_new_grid(cub):
    root, truth = cub
    src = CUB200(root, split="all")
    size = 16
    batch = src.batch([3, 1], image_size=size)
    assert batch["image"].shape == (2, size, size, 3) and batch["image"].dtype == np.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    np.testing.assert_array_equal(batch["label"], [truth["labels"][3], truth["labels"][1]])
    for row, i in enumerate([3, 1]):
        height, width = truth["images"][i].shape[:2]
        scale = np.array([size / height, size / width], np.float32)
        # Pixel centers map to pixel centers; box edges to edges.
        np.testing.assert_allclose(batch["landmarks"][row], (truth["landmarks"][i] + 0.5) * scale - 0.5,
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batch["bbox"][row], _expected_bbox(truth["xywh"][i]) * np.tile(scale, 2),
                                   rtol=1e-6)
    # At a fixed size the reader is a batch source, batching as the reader does.
    source = check_source(sized(src, size), "data")
    assert len(source) == len(src) and source.num_classes == src.num_classes
    for key, value in source.batch(np.array([3, 1])).items():
        np.testing.assert_array_equal(value, batch[key], err_msg=key)


def test_crop_to_bbox_moves_landmarks_with_the_crop(cub):
    root, truth = cub
    full, cropped = CUB200(root, split="all"), CUB200(root, split="all", crop_to_bbox=True)
    for i in range(len(full)):
        ymin, xmin, ymax, xmax = _expected_bbox(truth["xywh"][i])
        top, left = int(np.floor(ymin)), int(np.floor(xmin))
        bottom, right = int(np.ceil(ymax)), int(np.ceil(xmax))
        ex = cropped[i]
        np.testing.assert_array_equal(ex["image"], truth["images"][i][top:bottom, left:right])
        np.testing.assert_allclose(ex["landmarks"], truth["landmarks"][i] - np.array([top, left]), rtol=1e-6)
        np.testing.assert_allclose(ex["bbox"], [ymin - top, xmin - left, ymax - top, xmax - left], rtol=1e-6)
        # The crop's pixel (r, c) is the full image's (r + top, c + left).
        assert full[i]["landmarks"][0, 0] - ex["landmarks"][0, 0] == pytest.approx(top)


def test_index_errors(cub):
    src = CUB200(cub[0], split="train")
    np.testing.assert_array_equal(src[-1]["image"], src[2]["image"])
    with pytest.raises(IndexError, match="out of range for 3"):
        src[3]
    with pytest.raises(ValueError, match="expected one of"):
        CUB200(cub[0], split="val")


def test_missing_file_is_named(tmp_path):
    root = tmp_path / "CUB_200_2011"
    write_cub(root, num_images=2)
    (root / "parts/part_locs.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"parts/part_locs\.txt not found; expected the CUB_200_2011"):
        CUB200(root)


@pytest.mark.parametrize("name, bad_line, message", [
    ("bounding_boxes.txt", "2 1.0 2.0", r"bounding_boxes\.txt line 2: expected 5 columns, got 3"),
    ("bounding_boxes.txt", "2 1.0 2.0 abc 4.0", r"bounding_boxes\.txt id 2: expected numbers"),
    ("parts/part_locs.txt", "1 16 1.0 2.0 1", r"part_locs\.txt line 2: part_id 16 outside 1\.\.15"),
    ("images.txt", "x a/b.png", r"images\.txt line 2: expected an integer id"),
])
def test_malformed_line_is_named(tmp_path, name, bad_line, message):
    root = tmp_path / "CUB_200_2011"
    write_cub(root, num_images=2)
    lines = (root / name).read_text().splitlines()
    lines[1] = bad_line
    (root / name).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        CUB200(root, split="all")


def test_missing_annotation_for_an_image_is_named(tmp_path):
    root = tmp_path / "CUB_200_2011"
    write_cub(root, num_images=3)
    lines = (root / "bounding_boxes.txt").read_text().splitlines()
    (root / "bounding_boxes.txt").write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(ValueError, match=r"bounding_boxes\.txt has no entry for image ids \[3\]"):
        CUB200(root, split="all")
