"""Writers of tiny on-disk datasets in the real formats, with their ground truth.

Each writer builds a miniature of a real dataset (CUB-200-2011 folder, Broden
folder, tensorflow-datasets array_record directory) under a test's `tmp_path`
and returns what it wrote, so that tests (of the readers, of dissection, of the
interpretable-CNN experiment) can check that it is read back exactly.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CUB_PARTS = ("back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg",
             "left wing", "nape", "right eye", "right leg", "right wing", "tail", "throat")


def write_cub(root: Path, num_classes: int = 3, num_images: int = 6, seed: int = 0) -> dict[str, Any]:
    """Writes a CUB_200_2011-layout folder with random images and annotations.

    Image i has class i % num_classes, is a training image when i is even, and
    image 0 is grayscale (CUB has a few); sizes vary between images.

    Args:
        root: the folder to create (the CUB_200_2011 directory).
        num_classes: classes written to classes.txt.
        num_images: images written.
        seed: seed of the random pixels, boxes and landmarks.

    Returns:
        Ground truth per image (lists indexed by 0-based image position):
        'images' uint8 [H, W, 3] as read back in RGB, 'labels' (0-based),
        'is_train', 'xywh' float boxes, 'landmarks' [15, 2] (row, col),
        'visible' bool [15], plus 'class_names' and 'part_names'.
    """
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "parts").mkdir()
    truth: dict[str, Any] = {key: [] for key in ("images", "labels", "is_train", "xywh", "landmarks", "visible")}
    truth["class_names"] = [f"{c + 1:03d}.Bird_{c}" for c in range(num_classes)]
    truth["part_names"] = list(CUB_PARTS)
    lines: dict[str, list[str]] = {name: [] for name in ("images", "labels", "split", "boxes", "locs")}
    for i in range(num_images):
        image_id = i + 1
        height, width = 30 + 7 * i, 50 - 3 * i
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        if i == 0:
            pixels = np.repeat(pixels[..., :1], 3, axis=-1)
        directory = root / "images" / f"{i % num_classes + 1:03d}.Bird_{i % num_classes}"
        directory.mkdir(exist_ok=True)
        relative = f"{directory.name}/bird_{image_id}.png"
        Image.fromarray(pixels[..., 0] if i == 0 else pixels).save(root / "images" / relative)
        x, y = float(rng.integers(0, width // 2)), float(rng.integers(0, height // 2))
        w, h = float(rng.integers(5, width - x)), float(rng.integers(5, height - y)) + 0.5
        points = np.stack([rng.uniform(0, height, 15), rng.uniform(0, width, 15)], -1).round(1)
        visible = rng.random(15) < 0.7
        points[~visible] = 0.0  # as in CUB: invisible parts are at (0, 0)
        lines["images"].append(f"{image_id} {relative}")
        lines["labels"].append(f"{image_id} {i % num_classes + 1}")
        lines["split"].append(f"{image_id} {int(i % 2 == 0)}")
        lines["boxes"].append(f"{image_id} {x} {y} {w} {h}")
        lines["locs"] += [f"{image_id} {p + 1} {points[p, 1]} {points[p, 0]} {int(visible[p])}"
                          for p in range(15)]
        for key, value in (("images", pixels), ("labels", i % num_classes), ("is_train", i % 2 == 0),
                           ("xywh", (x, y, w, h)), ("landmarks", points.astype(np.float32)),
                           ("visible", visible)):
            truth[key].append(value)
    files = {"images.txt": "images", "image_class_labels.txt": "labels", "train_test_split.txt": "split",
             "bounding_boxes.txt": "boxes", "parts/part_locs.txt": "locs"}
    for name, key in files.items():
        (root / name).write_text("\n".join(lines[key]) + "\n")
    (root / "classes.txt").write_text("".join(f"{c + 1} {n}\n" for c, n in enumerate(truth["class_names"])))
    (root / "parts/parts.txt").write_text("".join(f"{p + 1} {n}\n" for p, n in enumerate(CUB_PARTS)))
    return truth


def png_bytes(array: np.ndarray) -> io.BytesIO:
    """PNG-encodes a uint8 [H, W] or [H, W, C] array (C = 1 is stored as grayscale)."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


BRODEN_CATEGORIES = ("color", "object", "part", "material", "scene", "texture")
# number: (name, {category: count}); 300 >= 256 exercises the G channel of label PNGs.
BRODEN_CONCEPTS = {
    1: ("black", {"color": 2}), 2: ("red", {"color": 1}), 5: ("dog", {"object": 1, "part": 3}),
    7: ("head", {"part": 2}), 9: ("wood", {"material": 1}), 11: ("street", {"scene": 2}),
    12: ("striped", {"texture": 1}), 300: ("car", {"object": 2}),
}


def encode_label_png(labels: np.ndarray) -> Image.Image:
    """Broden's label-map encoding: label number = R + 256 * G (B unused)."""
    rgb = np.stack([labels % 256, labels // 256, np.zeros_like(labels)], -1).astype(np.uint8)
    return Image.fromarray(rgb)


def write_broden(root: Path, seed: int = 0) -> dict[str, Any]:
    """Writes a 3-image Broden folder (index, label, category and c_* tables).

    Images are 20 x 24 with 10 x 12 label maps (the segmentation size differs
    from the image size, as in Broden). Images 0 and 1 are 'train', image 2 is
    'val'. Image 0 has color, object (with label 300 >= 256), two part maps
    and scene/texture image-level labels; image 1 object and material maps;
    image 2 only a scene label.

    Returns:
        'images' (uint8 [20, 24, 3] per image), 'seg' ({category: int32
        [K, 10, 12]} per image, K = 0 where absent), 'image_labels'
        ({category: list of ints} per image), 'splits', 'concepts'.
    """
    rng = np.random.default_rng(seed)
    (root / "images" / "fixture").mkdir(parents=True)
    image_size, seg_size = (20, 24), (10, 12)

    def label_map(values):
        return rng.choice(np.array(values), size=seg_size).astype(np.int32)

    plans = [  # per image: (split, {category: label maps}, {category: image-level labels})
        ("train", {"color": [label_map([0, 1, 2])], "object": [label_map([0, 5, 300])],
                   "part": [label_map([0, 7]), label_map([0, 5])]}, {"scene": [11], "texture": [12]}),
        ("train", {"object": [label_map([300, 5])], "material": [label_map([0, 9])]}, {}),
        ("val", {}, {"scene": [11]}),
    ]
    truth: dict[str, Any] = {"images": [], "seg": [], "image_labels": [], "splits": [],
                             "concepts": BRODEN_CONCEPTS}
    rows = [",".join(("image", "split", "ih", "iw", "sh", "sw") + BRODEN_CATEGORIES)]
    for i, (split, maps, labels) in enumerate(plans):
        pixels = rng.integers(0, 256, (*image_size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"fixture/im{i}.png")
        cells = []
        for category in BRODEN_CATEGORIES:
            names = [f"fixture/im{i}_{category}_{k}.png" for k in range(len(maps.get(category, [])))]
            for name, array in zip(names, maps.get(category, [])):
                encode_label_png(array).save(root / "images" / name)
            cells.append(";".join(names + [str(v) for v in labels.get(category, [])]))
        rows.append(",".join([f"fixture/im{i}.png", split, *map(str, image_size + seg_size), *cells]))
        truth["images"].append(pixels)
        truth["seg"].append({c: np.array(maps.get(c, []), np.int32).reshape(-1, *seg_size)
                             for c in BRODEN_CATEGORIES})
        truth["image_labels"].append({c: labels.get(c, []) for c in BRODEN_CATEGORIES})
        truth["splits"].append(split)
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    _write_broden_tables(root)
    return truth


def _write_broden_tables(root: Path) -> None:
    """label.csv, category.csv and c_<category>.csv for BRODEN_CONCEPTS."""
    lines = ["number,name,category,frequency,coverage,syns"]
    for number, (name, counts) in BRODEN_CONCEPTS.items():
        category = ";".join(f"{c}({n})" for c, n in counts.items())
        lines.append(f"{number},{name},{category},{sum(counts.values())},{number / 10},{name}s")
    (root / "label.csv").write_text("\n".join(lines) + "\n")
    categories = ["name,first,last,count,frequency"]
    for category in BRODEN_CATEGORIES:
        members = [(n, name) for n, (name, counts) in BRODEN_CONCEPTS.items() if category in counts]
        categories.append(f"{category},1,{len(members)},{len(members)},{len(members)}")
        codes = ["code,number,name,frequency,coverage"]
        codes += [f"{code},{n},{name},1,0.5" for code, (n, name) in enumerate(members, start=1)]
        (root / f"c_{category}.csv").write_text("\n".join(codes) + "\n")
    (root / "category.csv").write_text("\n".join(categories) + "\n")


def write_tfds_dataset(data_dir: Path, name: str, splits: dict[str, list[dict[str, Any]]]) -> Path:
    """Writes a real, tiny tensorflow-datasets dataset in the array_record format.

    No TensorFlow is needed: images are handed to the tfds features as PNG bytes
    (tfds encodes numpy images with TensorFlow, but stores given bytes as they
    are), and the records and dataset_info.json are what `tfds.data_source`
    reads on a prepared copy of the real dataset.

    Args:
        data_dir: the tfds data_dir to create the dataset in.
        name: a registered tfds name, e.g. 'cifar10' or 'voc/2007'.
        splits: {split: examples}; examples hold the builder's features, with
            every image (uint8 [H, W, C] array) given as an array.

    Returns:
        The dataset's directory (data_dir/name/[config/]version).
    """
    import tensorflow_datasets as tfds
    from array_record.python.array_record_module import ArrayRecordWriter
    from tensorflow_datasets.core import naming

    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    out = Path(builder.data_dir)
    out.mkdir(parents=True)
    infos = []
    for split, examples in splits.items():
        template = naming.ShardedFileTemplate(data_dir=out, dataset_name=builder.name, split=split,
                                              filetype_suffix="array_record")
        path = template.sharded_filepath(shard_index=0, num_shards=1)
        writer = ArrayRecordWriter(str(path), "group_size:1")
        for example in examples:
            writer.write(builder.info.features.serialize_example(_images_as_png(example)))
        writer.close()
        infos.append(tfds.core.SplitInfo(name=split, shard_lengths=[len(examples)],
                                         num_bytes=Path(path).stat().st_size, filename_template=template))
    builder.info.set_splits(tfds.core.SplitDict(infos))
    builder.info.write_to_directory(out)
    return out


def _images_as_png(example: Any) -> Any:
    """Replaces every uint8 [H, W, C] array in a nested example by PNG bytes."""
    if isinstance(example, dict):
        return {key: _images_as_png(value) for key, value in example.items()}
    if isinstance(example, np.ndarray) and example.dtype == np.uint8 and example.ndim == 3:
        return png_bytes(example)
    return example


VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")  # PASCAL VOC order: class_ind - 1

# PASCAL-Part fixture: per image id (height, width, split, objects), an object
# being (class, mask rectangles, rectangles cut out of the mask, parts), a part
# (fine name, its group under ANIMAL_PART_GROUPS as 1 head, 2 torso, 3 legs,
# 4 tail, 0 none, (r0, r1, c0, c1) = rows r0:r1, cols c0:c1 of the image).
# Eyes and the muzzle overlap their heads; no two groups overlap.
_VOC_PART_IMAGES = {
    "2008_000001": (40, 50, "train", [
        ("cat", [(5, 35, 8, 46)], [(5, 8, 40, 46)], [
            ("head", 1, (5, 15, 8, 18)), ("leye", 1, (7, 9, 10, 12)), ("reye", 1, (7, 9, 14, 16)),
            ("neck", 2, (15, 18, 10, 16)), ("torso", 2, (18, 28, 14, 40)), ("lfleg", 3, (28, 35, 16, 19)),
            ("rbpa", 3, (28, 35, 36, 39)), ("tail", 4, (10, 18, 40, 46))]),
        ("person", [(2, 38, 0, 8)], [], [
            ("hair", 0, (2, 4, 0, 8)), ("head", 1, (2, 8, 0, 8)), ("torso", 2, (8, 20, 0, 8))]),
    ]),
    # A single object with a single part: both come back from MATLAB as bare structs.
    "2008_000002": (36, 44, "val", [
        ("dog", [(6, 30, 4, 40)], [(25, 30, 30, 40)], [("head", 1, (6, 16, 4, 14))]),
    ]),
    # Parts as an empty double [] (cow) and as an empty struct array (bird).
    "2008_000003": (30, 30, "train", [
        ("horse", [(2, 26, 2, 28)], [], [
            ("head", 1, (2, 8, 2, 10)), ("muzzle", 1, (6, 8, 2, 5)), ("torso", 2, (8, 18, 6, 26)),
            ("lfuleg", 3, (18, 24, 8, 11)), ("lfho", 3, (24, 26, 8, 11)), ("lbuleg", 3, (18, 26, 22, 25)),
            ("tail", 4, (8, 14, 26, 28))]),
        ("cow", [(26, 30, 0, 8)], [], None),
        ("bird", [(0, 2, 20, 30)], [], []),
    ]),
}


def _rect_mask(shape: tuple[int, int], rects, holes=()) -> np.ndarray:
    """bool [H, W]: the union of rects (r0, r1, c0, c1) less the holes."""
    mask = np.zeros(shape, bool)
    for r0, r1, c0, c1 in rects:
        mask[r0:r1, c0:c1] = True
    for r0, r1, c0, c1 in holes:
        mask[r0:r1, c0:c1] = False
    return mask


def _struct_array(fields: tuple[str, ...], rows: list[dict[str, Any]]) -> np.ndarray:
    """A 1 x N MATLAB struct array for scipy.io.savemat (0 x 0 when rows is empty)."""
    array = np.empty((1, len(rows)) if rows else (0, 0), dtype=[(f, "O") for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            array[0, i][f] = row[f]
    return array


def write_part_annotation(path: Path, imname: str, objects: list[dict[str, Any]]) -> None:
    """Writes a PASCAL-Part Annotations_Part .mat file.

    Args:
        path: the .mat file.
        imname: anno.imname.
        objects: per object {'class': VOC name, 'mask': bool [H, W], 'parts':
            list of (part_name, bool [H, W]) or None}; None writes MATLAB's
            empty [] (0 x 0 double), an empty list a 0 x 0 struct array.
    """
    from scipy.io import savemat

    rows = []
    for obj in objects:
        parts = (np.zeros((0, 0)) if obj["parts"] is None else _struct_array(
            ("part_name", "mask"), [{"part_name": n, "mask": m.astype(bool)} for n, m in obj["parts"]]))
        rows.append({"class": obj["class"], "class_ind": float(VOC_CLASSES.index(obj["class"]) + 1),
                     "mask": obj["mask"].astype(bool), "parts": parts})
    anno = _struct_array(("imname", "objects"), [{"imname": imname, "objects": _struct_array(
        ("class", "class_ind", "mask", "parts"), rows)}])
    savemat(path, {"anno": anno}, do_compression=True)


def write_voc_part(root: Path, seed: int = 0) -> dict[str, Any]:
    """Writes a 3-image VOC2010 + PASCAL-Part folder (_VOC_PART_IMAGES).

    Images are JPEGs (as in VOC); the ground truth holds them as PIL decodes
    them. ImageSets/Main has train (images 1 and 3), val (2) and trainval
    lists and VOC's per-class '<class>_<split>.txt' lists (flag 1 present,
    -1 absent, 0 for the person of image 1 as if only 'difficult').

    Returns:
        'images' {id: uint8 [H, W, 3] decoded}, 'splits' {split: ids}, and
        'objects': per object of every file, in file order, {'image_id',
        'index' (in its file), 'class', 'box' (top, left, bottom, right), and,
        cropped to the box, 'image', 'object_mask' uint8, 'part_mask' int32
        (default groups: 1 head, 2 torso, 3 legs, 4 tail), 'landmarks' float32
        [4, 2] and 'visible' bool [4]}.
    """
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "Annotations_Part", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    truth: dict[str, Any] = {"images": {}, "objects": [], "splits": {"train": [], "val": [], "trainval": []}}
    for image_id, (height, width, split, plan) in _VOC_PART_IMAGES.items():
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        with Image.open(root / "JPEGImages" / f"{image_id}.jpg") as decoded:
            truth["images"][image_id] = np.asarray(decoded.convert("RGB"))
        objects = []
        for index, (name, rects, holes, parts) in enumerate(plan):
            mask = _rect_mask((height, width), rects, holes)
            part_masks = (None if parts is None
                          else [(p, _rect_mask((height, width), [r])) for p, _, r in parts])
            objects.append({"class": name, "mask": mask, "parts": part_masks})
            truth["objects"].append(_voc_part_truth(image_id, index, name, mask, parts or [],
                                                    truth["images"][image_id]))
        write_part_annotation(root / "Annotations_Part" / f"{image_id}.mat", image_id, objects)
        truth["splits"][split].append(image_id)
        truth["splits"]["trainval"].append(image_id)
    for split, ids in truth["splits"].items():
        (root / "ImageSets/Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for voc_class in VOC_CLASSES:
            lines = []
            for i in ids:
                present = voc_class in [obj[0] for obj in _VOC_PART_IMAGES[i][3]]
                flag = 0 if (i, voc_class) == ("2008_000001", "person") else 1 if present else -1
                lines.append(f"{i} {flag:2d}\n")
            (root / "ImageSets/Main" / f"{voc_class}_{split}.txt").write_text("".join(lines))
    return truth


def _voc_part_truth(image_id: str, index: int, name: str, mask: np.ndarray, parts, image: np.ndarray):
    """Ground truth of one fixture object: its crop, masks and part-group centers."""
    rows, cols = np.nonzero(mask)
    top, left, bottom, right = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
    part_mask = np.zeros(mask.shape, np.int32)
    for _, group, (r0, r1, c0, c1) in parts:
        if group:  # parts in no group are not painted
            part_mask[r0:r1, c0:c1] = group
    part_mask = part_mask[top:bottom, left:right]
    landmarks, visible = np.zeros((4, 2), np.float32), np.zeros(4, bool)
    for group in range(1, 5):
        r, c = np.nonzero(part_mask == group)
        if r.size:
            landmarks[group - 1], visible[group - 1] = (r.mean(), c.mean()), True
    return {"image_id": image_id, "index": index, "class": name, "box": (top, left, bottom, right),
            "image": image[top:bottom, left:right],
            "object_mask": mask[top:bottom, left:right].astype(np.uint8),
            "part_mask": part_mask, "landmarks": landmarks, "visible": visible}
