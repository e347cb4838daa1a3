"""PASCAL-Part reader: object crops, part masks and part-center landmarks read back exactly."""

import shutil

import numpy as np
import pytest

from interp.data import Reader
from interp.data.voc_part import ANIMAL_CLASSES, ANIMAL_PART_GROUPS, ICNN_LANDMARK_GROUPS, VOC_CLASSES, VOCPart
from tests.data.fixtures import VOC_CLASSES as FIXTURE_VOC_CLASSES
from tests.data.fixtures import write_part_annotation, write_voc_part


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc") / "VOC2010"
    return root, write_voc_part(root)


@pytest.fixture
def fresh(tmp_path):
    """A copy to break: (root, truth)."""
    root = tmp_path / "VOC2010"
    return root, write_voc_part(root)


def _expected(truth, classes, ids=None):
    return [o for o in truth["objects"] if o["class"] in classes and (ids is None or o["image_id"] in ids)]


def _assert_matches(ex, obj, classes):
    np.testing.assert_array_equal(ex["image"], obj["image"])
    assert ex["image"].dtype == np.uint8 and ex["image"].shape[-1] == 3
    assert ex["label"] == classes.index(obj["class"]) and ex["label"].dtype == np.int32
    np.testing.assert_array_equal(ex["object_mask"], obj["object_mask"])
    np.testing.assert_array_equal(ex["part_mask"], obj["part_mask"])
    np.testing.assert_allclose(ex["landmarks"], obj["landmarks"], rtol=1e-6)
    np.testing.assert_array_equal(ex["landmark_visible"], obj["visible"])
    np.testing.assert_array_equal(ex["crop_box"], obj["box"])
    assert ex["object_mask"].dtype == np.uint8 and ex["part_mask"].dtype == np.int32
    assert ex["landmarks"].dtype == np.float32 and ex["landmark_visible"].dtype == bool


def test_examples_read_back_exactly(voc):
    root, truth = voc
    src = VOCPart(root)
    assert isinstance(src, Reader)
    assert src.class_names == ANIMAL_CLASSES and src.num_classes == 6
    assert src.part_names == ("head", "torso", "legs", "tail")
    expected = _expected(truth, ANIMAL_CLASSES)  # the person of image 1 is not an animal
    assert [o["class"] for o in expected] == ["cat", "dog", "horse", "cow", "bird"]
    assert src.objects == [(o["image_id"], o["index"]) for o in expected]
    assert len(src) == 5
    for i, obj in enumerate(expected):
        _assert_matches(src[i], obj, ANIMAL_CLASSES)


def test_landmarks_are_hand_computed_part_centers(voc):
    src = VOCPart(voc[0])
    cat, dog, horse, cow, bird = (src[i] for i in range(5))
    # Cat crop starts at image pixel (5, 8). Head: rows 0:10, cols 0:10 of the crop
    # (the eyes lie inside it); torso: neck (3 x 6 px centered (11, 4.5)) and torso
    # (10 x 26 px centered (17.5, 18.5)); legs: two 7 x 3 px legs centered (26, 9)
    # and (26, 29); tail: rows 5:13, cols 32:38.
    torso = (np.array([11, 4.5]) * 18 + np.array([17.5, 18.5]) * 260) / 278
    np.testing.assert_allclose(cat["landmarks"], [[4.5, 4.5], torso, [26, 19], [8.5, 34.5]], rtol=1e-6)
    assert cat["landmark_visible"].all()
    assert cat["part_mask"][0, 0] == 1 and cat["part_mask"][2, 2] == 1  # an eye pixel is head
    # Dog: one part (a bare struct in the .mat), the head at rows 6:16, cols 4:14.
    np.testing.assert_allclose(dog["landmarks"], [[4.5, 4.5], [0, 0], [0, 0], [0, 0]])
    np.testing.assert_array_equal(dog["landmark_visible"], [True, False, False, False])
    # Horse legs: upper leg + hoof (8 x 3 px centered (19.5, 7)) and a back upper leg
    # (8 x 3 px centered (19.5, 21)) in the crop from (2, 2).
    np.testing.assert_allclose(horse["landmarks"][2], [19.5, 14])
    for no_parts in (cow, bird):  # parts [] (empty double) and an empty struct array
        assert not no_parts["landmark_visible"].any() and not no_parts["part_mask"].any()
        assert no_parts["object_mask"].all()


@pytest.mark.parametrize("split, ids", [("train", ["2008_000001", "2008_000003"]), ("val", ["2008_000002"]),
                                        ("trainval", None), (None, None)])
def test_split_selection(voc, split, ids):
    root, truth = voc
    src = VOCPart(root, split=split)
    expected = _expected(truth, ANIMAL_CLASSES, ids)
    assert src.objects == [(o["image_id"], o["index"]) for o in expected]
    for i, obj in enumerate(expected):
        _assert_matches(src[i], obj, ANIMAL_CLASSES)


def test_class_selection_and_order(voc):
    root, truth = voc
    classes = ("person", "cat")
    src = VOCPart(root, split="train", classes=classes)  # person's flag is 0 ('difficult'): still read
    expected = _expected(truth, classes)
    assert [(o["class"], o["image_id"]) for o in expected] == [("cat", "2008_000001"),
                                                               ("person", "2008_000001")]
    assert src.class_names == classes and src.num_classes == 2
    assert [int(src[i]["label"]) for i in range(len(src))] == [1, 0]
    for i, obj in enumerate(expected):
        _assert_matches(src[i], obj, classes)
    person = src[1]  # 'hair' is in no group: its rows (0:2) are left to the head painted after it
    assert (person["part_mask"][:6] == 1).all() and (person["part_mask"][6:18] == 2).all()
    assert VOCPart(root, split="val", classes=["cat"]).objects == []


def test_class_lists_skip_unlisted_files(fresh):
    root, truth = fresh
    (root / "Annotations_Part/2008_000003.mat").write_bytes(b"not a mat file")
    cats = VOCPart(root, split="train", classes=["cat"])  # cat_train.txt: image 3 has no cat
    assert cats.objects == [("2008_000001", 0)]
    with pytest.raises(ValueError, match=r"2008_000003\.mat is not a readable MATLAB \.mat file"):
        VOCPart(root, split="train", classes=["horse"])
    for path in (root / "ImageSets/Main").glob("*_*.txt"):  # without the lists every file is read
        path.unlink()
    with pytest.raises(ValueError, match=r"2008_000003\.mat is not a readable"):
        VOCPart(root, split="train", classes=["cat"])


def test_same_objects_without_class_lists(fresh):
    root, truth = fresh
    with_lists = VOCPart(root, split="trainval").objects
    for path in (root / "ImageSets/Main").glob("*_*.txt"):
        path.unlink()
    assert VOCPart(root, split="trainval").objects == with_lists


def test_batch_keeps_landmarks_on_their_parts(voc):
    root, truth = voc
    src = VOCPart(root)
    size = 64
    batch = src.batch([0, 2, 1], image_size=size)
    assert batch["image"].shape == (3, size, size, 3) and batch["image"].dtype == np.float32
    assert batch["object_mask"].shape == batch["part_mask"].shape == (3, size, size)
    np.testing.assert_array_equal(batch["label"], [1, 4, 3])
    for row, i in enumerate([0, 2, 1]):
        ex = src[i]
        height, width = ex["image"].shape[:2]
        scale = np.array([size / height, size / width])
        np.testing.assert_allclose(batch["landmarks"][row], (ex["landmarks"] + 0.5) * scale - 0.5, rtol=1e-5)
        np.testing.assert_array_equal(batch["crop_box"][row], ex["crop_box"])
        for g in [g for g in (0, 1, 3) if ex["landmark_visible"][g]]:
            # The resized head's, torso's and tail's own centers are within half a pixel
            # of the moved landmarks (legs, thin strips apart, can be sampled unevenly).
            r, c = np.nonzero(batch["part_mask"][row] == g + 1)
            np.testing.assert_allclose([r.mean(), c.mean()], batch["landmarks"][row, g], atol=0.5)
    cat = batch["landmarks"][0].round().astype(int)
    for g in (0, 1, 3):  # head, torso and tail centers lie on their parts (legs' between two legs)
        assert batch["part_mask"][0][cat[g, 0], cat[g, 1]] == g + 1


def test_part_groups_override(voc):
    root, _ = voc
    src = VOCPart(root, classes=["cat"], parts=ICNN_LANDMARK_GROUPS)
    assert src.part_names == ("head", "neck", "torso")
    np.testing.assert_allclose(src[0]["landmarks"], [[4.5, 4.5], [11, 4.5], [17.5, 18.5]])
    eyes = VOCPart(root, classes=["cat"], parts={"eyes": ("leye", "reye"), "tail": "tail"})
    np.testing.assert_allclose(eyes[0]["landmarks"], [[2.5, 4.5], [8.5, 34.5]])
    assert eyes[0]["part_mask"].max() == 2 and (eyes[0]["part_mask"] == 1).sum() == 8


def test_later_parts_paint_over_earlier_and_empty_objects_are_skipped(tmp_path):
    root = tmp_path / "VOC2010"
    write_voc_part(root)
    image = np.zeros((10, 12), bool)
    full, head, torso = image.copy(), image.copy(), image.copy()
    full[:, 2:8], head[0:6, 2:8], torso[4:10, 2:8] = True, True, True
    write_part_annotation(root / "Annotations_Part/2008_000002.mat", "2008_000002", [
        {"class": "dog", "mask": full, "parts": [("head", head), ("torso", torso)]},
        {"class": "dog", "mask": image, "parts": None},  # an empty silhouette: nothing to crop
        {"class": "dog", "mask": full, "parts": [("torso", torso), ("head", head)]},
    ])
    from PIL import Image
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(root / "JPEGImages/2008_000002.jpg")
    src = VOCPart(root, split="val")
    assert src.objects == [("2008_000002", 0), ("2008_000002", 2)]
    torso_wins, head_wins = src[0], src[1]
    np.testing.assert_array_equal(torso_wins["part_mask"][:, 0], [1] * 4 + [2] * 6)
    np.testing.assert_allclose(torso_wins["landmarks"][:2], [[1.5, 2.5], [6.5, 2.5]])
    np.testing.assert_array_equal(head_wins["part_mask"][:, 0], [1] * 6 + [2] * 4)
    np.testing.assert_allclose(head_wins["landmarks"][:2], [[2.5, 2.5], [7.5, 2.5]])


def test_margin_grows_the_crop_within_the_image(voc):
    root, truth = voc
    dog = VOCPart(root, split="val", margin=5)[0]
    np.testing.assert_array_equal(dog["crop_box"], [1, 0, 35, 44])  # rows 6:30, cols 4:40 of 36 x 44
    np.testing.assert_array_equal(dog["image"], truth["images"]["2008_000002"][1:35])
    np.testing.assert_allclose(dog["landmarks"][0], [4.5 + 5, 4.5 + 4])
    assert dog["object_mask"][:5].sum() == 0 and dog["object_mask"][5, 4]


def test_voc_classes_match_the_fixture():
    assert VOC_CLASSES == FIXTURE_VOC_CLASSES
    assert set(ANIMAL_CLASSES) <= set(VOC_CLASSES)
    fine = [name for names in ANIMAL_PART_GROUPS.values() for name in names]
    assert len(fine) == len(set(fine))


def test_missing_folder_split_and_files_are_named(fresh):
    root, _ = fresh
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Main/test\.txt not found"):
        VOCPart(root, split="test")
    (root / "ImageSets/Main/train.txt").write_text("2008_000001\n2009_999999\n")
    with pytest.raises(FileNotFoundError, match=r"Annotations_Part/2009_999999\.mat not found; 1 ids"):
        VOCPart(root, split="train")
    (root / "JPEGImages/2008_000002.jpg").unlink()
    src = VOCPart(root, split="val")
    with pytest.raises(FileNotFoundError, match=r"image .*JPEGImages/2008_000002\.jpg not found"):
        src[0]
    with pytest.raises(IndexError, match="out of range for 1"):
        src[1]
    shutil.rmtree(root / "Annotations_Part")
    with pytest.raises(FileNotFoundError, match=r"folder .*Annotations_Part not found; expected the VOC2010"):
        VOCPart(root)


def test_bad_annotations_are_named(fresh):
    root, _ = fresh
    from scipy.io import savemat
    savemat(root / "Annotations_Part/2008_000002.mat", {"annotation": np.zeros(3)})
    with pytest.raises(ValueError, match=r"2008_000002\.mat has no variable 'anno'; expected PASCAL-Part"):
        VOCPart(root, split="val")
    savemat(root / "Annotations_Part/2008_000002.mat", {"anno": {"imname": "2008_000002"}})
    with pytest.raises(ValueError, match=r"2008_000002\.mat: anno has no field 'objects'"):
        VOCPart(root, split="val")
    savemat(root / "Annotations_Part/2008_000002.mat",
            {"anno": {"imname": "x", "objects": {"class": "dog", "mask": np.ones((4, 4), np.uint8)}}})
    with pytest.raises(ValueError, match=r"anno\.objects\(1\) has no field 'parts'"):
        VOCPart(root, split="val")


def test_mask_of_another_size_than_the_image_is_named(fresh):
    root, _ = fresh
    write_part_annotation(root / "Annotations_Part/2008_000002.mat", "2008_000002",
                          [{"class": "dog", "mask": np.ones((5, 5), bool), "parts": None}])
    with pytest.raises(ValueError, match=r"2008_000002\.mat object 0 mask is 5x5; the image .* is 36x44"):
        VOCPart(root, split="val")[0]
    write_part_annotation(root / "Annotations_Part/2008_000002.mat", "2008_000002", [
        {"class": "dog", "mask": np.ones((36, 44), bool), "parts": [("head", np.ones((36, 4), bool))]}])
    with pytest.raises(ValueError, match=r"object 0 part 'head' mask is 36x4; the image .* is 36x44"):
        VOCPart(root, split="val")[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": ["cat", "kitty"]}, r"unknown classes \['kitty'\]; expected PASCAL VOC class names: aero"),
    ({"classes": []}, r"unknown classes \(none given\)"),
    ({"parts": {"head": ("head",), "face": ("head", "nose")}}, r"part 'head' is in groups 'head' and 'face'"),
    ({"parts": {"head": ()}}, r"part group 'head' has no fine part names"),
    ({"margin": -1}, r"margin -1; expected pixels >= 0"),
])
def test_bad_arguments_are_named(voc, kwargs, message):
    with pytest.raises(ValueError, match=message):
        VOCPart(voc[0], **kwargs)
