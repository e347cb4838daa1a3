"""Views of a batch source: object crops, mirror images and subsets move masks and landmarks with the image."""

import numpy as np
import pytest

from interp.data import SynthParts, flipped, in_memory, object_crops, subset

DATA = SynthParts(seed=3, image_size=64)


def test_a_crop_fills_the_image_with_the_object_and_keeps_landmarks_on_their_parts():
    whole, crops = DATA.batch(np.arange(16)), object_crops(DATA).batch(np.arange(16))
    assert crops["image"].shape == (16, 64, 64, 3) and crops["part_mask"].dtype == whole["part_mask"].dtype
    assert crops["object_mask"].mean() > 2 * np.asarray(whole["object_mask"]).mean()
    rows, cols = crops["object_mask"].any(2), crops["object_mask"].any(1)
    assert rows[:, 0].all() and rows[:, -1].all() and cols[:, 0].all() and cols[:, -1].all()  # the box is the image
    on_part = [crops["part_mask"][i, int(round(r)), int(round(c))] == k + 1
               for i in range(16) for k in np.flatnonzero(crops["landmark_visible"][i])
               for r, c in [np.clip(crops["landmarks"][i, k], 0, 63)]]
    assert np.mean(on_part) > 0.95, np.mean(on_part)  # a landmark is rounded to a pixel of its part
    np.testing.assert_array_equal(crops["label"], whole["label"])


def test_a_box_field_crops_like_the_mask_it_was_drawn_from():
    whole = DATA.batch(np.arange(4))
    mask = np.asarray(whole["object_mask"])
    rows, cols = np.flatnonzero(mask[0].any(1)), np.flatnonzero(mask[0].any(0))
    boxes = np.array([[r[0], c[0], r[-1] + 1, c[-1] + 1] for m in mask
                      for r, c in [(np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0)))]], np.float32)
    assert boxes[0].tolist() == [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    arrays = {k: np.asarray(v) for k, v in whole.items()} | {"bbox": boxes}
    by_box = object_crops(in_memory(arrays), box="bbox").batch(np.arange(4))
    by_mask = object_crops(DATA).batch(np.arange(4))
    np.testing.assert_allclose(by_box["image"], by_mask["image"], atol=1e-6)
    np.testing.assert_allclose(by_box["landmarks"], by_mask["landmarks"], atol=1e-5)


def test_mirrors_and_subsets():
    crops = object_crops(DATA)
    plain, mirrored = crops.batch(np.arange(4)), flipped(crops).batch(np.arange(4))
    np.testing.assert_array_equal(mirrored["image"], plain["image"][:, :, ::-1])
    np.testing.assert_array_equal(mirrored["part_mask"], plain["part_mask"][:, :, ::-1])
    np.testing.assert_allclose(mirrored["landmarks"][..., 1], 63 - plain["landmarks"][..., 1])
    chosen = subset(crops, [2, 2, 0], flip=[False, True, False]).batch(np.array([1, 0, 2]))
    np.testing.assert_array_equal(chosen["image"][0], plain["image"][2, :, ::-1])
    np.testing.assert_array_equal(chosen["image"][1], plain["image"][2])
    np.testing.assert_array_equal(chosen["label"], np.asarray(plain["label"])[[2, 2, 0]])
    with pytest.raises(ValueError, match=r"indices: expected a non-empty list of example indices below len"):
        subset(in_memory(np.zeros((3, 4, 4, 3))), [0, 3])
    with pytest.raises(ValueError, match=r"flip: expected bool \[2\] like indices"):
        subset(in_memory(np.zeros((3, 4, 4, 3))), [0, 1], flip=[True])
    with pytest.raises(ValueError, match="box: expected 'object_mask' or a box field 'bbox'"):
        object_crops(DATA, box="mask")
