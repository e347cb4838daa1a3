"""Broden folder reader: label maps, image-level labels and the concept table."""

import numpy as np
import pytest

from interp.data import Reader, resize_nearest
from interp.data.broden import Broden, decode_label_png
from tests.data.fixtures import BRODEN_CATEGORIES, encode_label_png, write_broden


@pytest.fixture(scope="module")
def broden(tmp_path_factory):
    root = tmp_path_factory.mktemp("broden")
    return root, write_broden(root)


def test_label_png_decodes_r_plus_256_g(tmp_path):
    labels = np.array([[0, 1, 255], [256, 300, 65535]], np.int32)
    encode_label_png(labels).save(tmp_path / "m.png")
    decoded = decode_label_png(tmp_path / "m.png")
    np.testing.assert_array_equal(decoded, labels)
    assert decoded.dtype == np.int32


@pytest.mark.parametrize("split, rows", [("train", [0, 1]), ("val", [2]), (None, [0, 1, 2])])
def test_examples_read_back_exactly(broden, split, rows):
    root, truth = broden
    src = Broden(root, split=split)
    assert isinstance(src, Reader) and len(src) == len(rows)
    assert src.categories == BRODEN_CATEGORIES
    for i, row in enumerate(rows):
        ex = src[i]
        np.testing.assert_array_equal(ex["image"], truth["images"][row])
        for category in BRODEN_CATEGORIES:
            np.testing.assert_array_equal(ex[f"seg/{category}"], truth["seg"][row][category])
            assert ex[f"seg/{category}"].shape[1:] == (10, 12)  # sh x sw, not ih x iw
            np.testing.assert_array_equal(ex[f"image_labels/{category}"],
                                          truth["image_labels"][row][category])
    if 0 in rows:
        assert 300 in src[0]["seg/object"]  # a label >= 256 survives the PNG round trip


def test_concept_table(broden):
    root, truth = broden
    src = Broden(root)
    assert sorted(src.concepts) == sorted(truth["concepts"])
    for number, (name, counts) in truth["concepts"].items():
        concept = src.concepts[number]
        assert (concept.name, concept.categories) == (name, counts)
        assert src.concept_names[number] == name
    assert src.concepts[5].category == "part"  # dog: part(3) beats object(1)
    assert src.concepts[300].category == "object"
    assert src.concepts[300].syns == ("cars",)
    assert src.concept_names[3] == ""  # unused numbers have no name
    assert [c.number for c in src.category_codes["object"]] == [5, 300]
    assert src.category_info["color"].count == 2


def test_category_subset(broden):
    src = Broden(broden[0], categories=["object"])
    assert set(src[0]) == {"image", "seg/object", "image_labels/object"}
    with pytest.raises(ValueError, match=r"categories \['shape'\] not in index.csv"):
        Broden(broden[0], categories=["shape"])


def test_batch_pads_ragged_maps_and_resizes_nearest(broden):
    root, truth = broden
    src = Broden(root)
    batch = src.batch([0, 1, 2], image_size=8)
    assert batch["image"].shape == (3, 8, 8, 3)
    assert batch["seg/part"].shape == (3, 2, 8, 8)  # image 0 has two part maps
    assert batch["seg/object"].dtype == np.int32
    assert not batch["seg/part"][1:].any()  # padding is 0 = unlabeled
    for row in range(2):
        original = truth["seg"][row]["object"][0]
        assert set(np.unique(batch["seg/object"][row, 0])) <= set(np.unique(original))
    np.testing.assert_array_equal(batch["image_labels/scene"], [[11], [0], [11]])


def test_resize_nearest_replicates_pixels_on_integer_upsampling():
    labels = np.array([[[1, 300], [7, 65535]]], np.int32)
    np.testing.assert_array_equal(resize_nearest(labels, 4), np.kron(labels, np.ones((1, 2, 2), np.int32)))


def _rewrite_line(path, line_index, new_line):
    lines = path.read_text().splitlines()
    lines[line_index] = new_line
    path.write_text("\n".join(lines) + "\n")


def test_index_row_with_wrong_column_count_is_named(tmp_path):
    write_broden(tmp_path)
    _rewrite_line(tmp_path / "index.csv", 2, "fixture/im1.png,train,20,24,10,12,,,")
    with pytest.raises(ValueError, match=r"index\.csv line 3: expected 12 columns .*got 9"):
        Broden(tmp_path)


@pytest.mark.parametrize("name, line, message", [
    ("index.csv", 0, r"index\.csv header .* expected \['image', 'split'"),
    ("label.csv", 1, r"label\.csv line 2: category 'color8'; expected 'name\(count\)'"),
    ("category.csv", 1, r"category\.csv line 2: invalid literal"),
])
def test_malformed_tables_are_named(tmp_path, name, line, message):
    write_broden(tmp_path)
    bad = {"index.csv": "img,split", "label.csv": "1,black,color8,2,0.1,",
           "category.csv": "color,one,2,2,2"}[name]
    _rewrite_line(tmp_path / name, line, bad)
    with pytest.raises(ValueError, match=message):
        Broden(tmp_path)


def test_missing_files_are_named(tmp_path):
    write_broden(tmp_path)
    (tmp_path / "c_texture.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"c_texture\.csv not found; expected the Broden folder layout"):
        Broden(tmp_path)
    write_broden(tmp_path / "b")
    (tmp_path / "b/images/fixture/im0_part_1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"im0_part_1\.png not found"):
        Broden(tmp_path / "b")[0]


def test_label_map_of_wrong_size_is_named(tmp_path):
    write_broden(tmp_path)
    encode_label_png(np.zeros((5, 5), np.int32)).save(tmp_path / "images/fixture/im1_object_0.png")
    with pytest.raises(ValueError, match=r"im1_object_0\.png is 5x5; index.csv says sh x sw = 10x12"):
        Broden(tmp_path)[1]
