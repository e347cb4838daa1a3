"""tfds readers, tested two ways, neither with TensorFlow nor a download.

1. Real array_record datasets written into tmp_path with each builder's own
   features (`write_tfds_dataset`): `tfds.data_source` reads them as it reads a
   prepared copy of the real dataset, so known values must come back exactly.
2. `tfds.testing.mock_data(policy=USE_CODE)`, which serves random examples of
   each builder's features through `tfds.data_source` (it patches the
   ArrayRecordDataSource), as a check that the normalizers accept every
   feature the builder declares.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from interp.data import Reader
from interp.data.tfds_sources import CELEB_A_LANDMARKS, tfds_source
from tests.data.fixtures import write_tfds_dataset

RNG = np.random.default_rng(0)
CELEB_A_ATTRIBUTES = 40


def _image(height, width, channels=3):
    return RNG.integers(0, 256, (height, width, channels), dtype=np.uint8)


def _cifar(label, i):
    return {"id": f"ex_{i}", "image": _image(32, 32), "label": label}


def _bird(label, size, box):
    return {"image": _image(*size), "image/filename": "b.jpg", "label": label, "label_name": "bird",
            "bbox": np.array(box, np.float32), "segmentation_mask": _image(*size, channels=1)}


def _voc(boxes, labels):
    n = len(labels)
    return {"image": _image(40, 50), "image/filename": "v.jpg", "labels": labels, "labels_no_difficult": labels,
            "objects": {"bbox": np.array(boxes, np.float32).reshape(n, 4), "label": labels,
                        "is_difficult": [False] * n, "is_truncated": [False] * n, "pose": [0] * n}}


def _celeb(seed):
    rng = np.random.default_rng(seed)
    attributes = rng.random(CELEB_A_ATTRIBUTES) < 0.5
    features = tfds.builder("celeb_a", data_dir="/nonexistent").info.features
    names = list(features["attributes"].keys())
    points = {f"{n}_{axis}": int(rng.integers(0, 170)) for n in CELEB_A_LANDMARKS for axis in "xy"}
    return {"image": _image(218, 178), "landmarks": points, "identity": {"Identity_No": seed},
            "attributes": dict(zip(names, map(bool, attributes)))}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    truth = {
        "cifar10": {"train": [_cifar(label, i) for i, label in enumerate([3, 7, 0])],
                    "test": [_cifar(label, i) for i, label in enumerate([1, 9])]},
        "caltech_birds2011": {"train": [_bird(5, (20, 30), [0.1, 0.2, 0.5, 0.75]),
                                        _bird(199, (24, 16), [0.0, 0.25, 1.0, 0.5])]},
        "voc/2007": {"train": [_voc([[0.1, 0.1, 0.2, 0.2], [0.0, 0.0, 0.5, 0.8]], [4, 11]),
                               _voc([[0.0, 0.0, 0.5, 0.5]], [19]), _voc([[0.2, 0.2, 0.6, 0.6]] * 2, [2, 3])]},
        "celeb_a": {"test": [_celeb(1), _celeb(2)]},
    }
    for name, splits in truth.items():
        write_tfds_dataset(data_dir, name, splits)
    return data_dir, truth


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_reads_back_exactly_by_split(data, split):
    data_dir, truth = data
    src = tfds_source("cifar10", split=split, data_dir=data_dir)
    assert isinstance(src, Reader) and len(src) == len(truth["cifar10"][split])
    assert src.num_classes == 10 and len(src.class_names) == 10  # names: from the prepared metadata
    for i, expected in enumerate(truth["cifar10"][split]):
        ex = src[i]
        np.testing.assert_array_equal(ex["image"], expected["image"])
        assert ex["label"] == expected["label"] and ex["label"].dtype == np.int32
    batch = src.batch(range(len(src)), image_size=16)
    assert batch["image"].shape == (len(src), 16, 16, 3) and batch["image"].dtype == np.float32
    np.testing.assert_array_equal(batch["label"], [e["label"] for e in truth["cifar10"][split]])


def test_caltech_birds_boxes_in_pixels_and_rescaled(data):
    data_dir, truth = data
    src = tfds_source("caltech_birds2011", split="train", data_dir=data_dir)
    assert src.num_classes == 200
    for i, expected in enumerate(truth["caltech_birds2011"]["train"]):
        ex = src[i]
        height, width = expected["image"].shape[:2]
        np.testing.assert_allclose(ex["bbox"], expected["bbox"] * [height, width, height, width], rtol=1e-6)
        np.testing.assert_array_equal(ex["object_mask"], expected["segmentation_mask"][..., 0])
        assert ex["label"] == expected["label"]
    batch = src.batch([0, 1], image_size=8)
    np.testing.assert_allclose(batch["bbox"], [e["bbox"] * 8 for e in truth["caltech_birds2011"]["train"]],
                               rtol=1e-6)  # fractions of the image are S-pixel boxes at size S
    assert batch["object_mask"].shape == (2, 8, 8) and batch["object_mask"].dtype == np.uint8


def test_voc_label_is_largest_object_and_objects_pad(data):
    data_dir, _ = data
    src = tfds_source("voc/2007", split="train", data_dir=data_dir)
    assert src.num_classes == 20 and src.class_names[11] == "dog"
    assert [int(src[i]["label"]) for i in range(3)] == [11, 19, 2]  # last: a tie goes to the first
    np.testing.assert_allclose(src[0]["object_bbox"][1], [0, 0, 20, 40])  # 40 x 50 image
    batch = src.batch([1, 0], image_size=10)
    np.testing.assert_array_equal(batch["object_label"], [[19, -1], [4, 11]])
    np.testing.assert_allclose(batch["object_bbox"][0], [[0, 0, 5, 5], [0, 0, 0, 0]])


def test_celeb_a_landmarks_are_row_col(data):
    data_dir, truth = data
    src = tfds_source("celeb_a", split="test", data_dir=data_dir)
    assert src.num_classes is None and len(src.attribute_names) == CELEB_A_ATTRIBUTES
    for i, expected in enumerate(truth["celeb_a"]["test"]):
        ex = src[i]
        points = expected["landmarks"]
        want = [[points[f"{n}_y"], points[f"{n}_x"]] for n in CELEB_A_LANDMARKS]
        np.testing.assert_array_equal(ex["landmarks"], want)
        np.testing.assert_array_equal(ex["attributes"], [expected["attributes"][a] for a in src.attribute_names])
    batch = src.batch([1], image_size=109)  # 218 x 178 -> 109 x 109: rows halve (pixels 2r, 2r+1 -> r)
    want = (src[1]["landmarks"] + 0.5) * [0.5, 109 / 178] - 0.5
    np.testing.assert_allclose(batch["landmarks"][0], want, rtol=1e-5, atol=1e-5)


def test_missing_dataset_says_what_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'cifar10' not found in data_dir=.*download_and_prepare"):
        tfds_source("cifar10", split="train", data_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="supported: "):
        tfds_source("mnist", split="train", data_dir=tmp_path)


@pytest.mark.parametrize("name, keys", [
    ("cifar10", {"image", "label"}),
    ("caltech_birds2011", {"image", "label", "bbox", "object_mask"}),
    ("celeb_a", {"image", "attributes", "landmarks"}),
])
def test_mock_data_examples_normalize(tmp_path, name, keys):
    with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
        src = tfds_source(name, split="train", data_dir=tmp_path)
        assert len(src) == 3 and set(src[2]) == keys
        batch = src.batch([0, 1, 2], image_size=12)
    assert batch["image"].shape == (3, 12, 12, 3)
    assert all(batch[k].shape[0] == 3 for k in keys)
