"""The dissection report: its pages list every unit by IoU, and headless Chromium draws them.

Chromium is required, not optional: CI installs Debian's `chromium` package
(.ci/run), and without it these tests fail rather than skip.
"""

import re
import shutil
import subprocess

import jax
import numpy as np
import pytest
from PIL import Image

from interp import data, dissect, nets

IMAGE_SIZE = 64  # the data's size, so each shown image is the image itself


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    model = nets.create("small_cnn", num_classes=6, key=jax.random.key(0))
    concepts = dissect.SynthPartsConcepts(data.SynthParts(seed=0, image_size=64), num_examples=64)
    dissections = dissect.dissect(model, concepts, ["relu2"], batch_size=32, top_images=4)
    index = dissect.write_report(dissections, model, concepts, tmp_path_factory.mktemp("report"),
                                 image_size=IMAGE_SIZE, batch_size=32)
    return index, dissections["relu2"], model, concepts


def test_layer_page_lists_every_unit_once_by_decreasing_iou(report):
    index, dissection, _, _ = report
    page = (index.parent / "relu2.html").read_text()
    units = [int(u) for u in re.findall(r'<tr id="unit(\d+)"', page)]
    assert units == [int(u) + 1 for u in dissection.order]
    assert sorted(units) == list(range(1, dissection.num_units + 1))
    shown = [float(s) for s in re.findall(r'<td class="iou number">([0-9.]+)</td>', page)]
    assert shown == sorted(shown, reverse=True) and len(shown) == dissection.num_units
    assert page.count(">detector</td>") == dissection.detectors.sum()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == dissection.num_units
    for source in sources:
        assert not source.startswith(("/", "file:", "http")), source
        assert (index.parent / source).is_file(), source
    assert 'href="relu2.html"' in index.read_text()


def test_strip_dims_each_top_image_where_the_unit_is_off_and_outlines_where_it_is_on(report):
    index, dissection, model, concepts = report
    unit = int(dissection.order[0])
    top = dissection.top_images[unit]
    strip = np.asarray(Image.open(index.parent / f"images/relu2-unit{unit + 1:04d}.png")).astype(float)
    assert strip.shape == (IMAGE_SIZE, len(top) * IMAGE_SIZE + (len(top) - 1) * 4, 3)
    batch = np.resize(top, 32)  # the report's batch shape, whose computations are compiled already
    images = concepts.batch(batch).images
    masks = dissect.activation_masks(model, dissection, images)[:len(top), ..., unit]  # [n, H, W]
    images = np.asarray(images)[:len(top)]
    assert masks.any() and not masks.all()
    for slot, (image, mask) in enumerate(zip(images, masks)):
        tile = strip[:, slot * (IMAGE_SIZE + 4):][:, :IMAGE_SIZE]
        near = np.pad(mask, 1, mode="edge")
        edge = mask & ~(near[:-2, 1:-1] & near[2:, 1:-1] & near[1:-1, :-2] & near[1:-1, 2:])
        expected = np.where(edge[..., None], [1.0, 1.0, 0.0], np.where(mask[..., None], image, 0.25 * image))
        assert np.mean(np.abs(tile - 255 * expected).max(-1) <= 1) > 0.99  # a pixel may flip at the threshold


def test_chromium_renders_the_layer_page_with_its_strips(report, tmp_path):
    index, dissection, _, _ = report
    screen = screenshot(index.parent / "relu2.html", tmp_path)
    first, second = (np.asarray(Image.open(index.parent / f"images/relu2-unit{u + 1:04d}.png"))
                     for u in dissection.order[:2])
    where = locate(screen, first)
    assert where is not None, "the first unit's strip is not on the page: images missing or broken"
    top, left = where
    below = locate(screen[top + len(first):], second)
    assert below is not None and below[1] == left, "the second unit's strip is not right under the first"
    text = screen[top:top + len(first), :left]  # unit, label, IoU, detector cells left of the strip
    assert (text.max(-1) < 128).sum() > 100, "no text left of the first strip"
    assert (screen[:top].max(-1) < 128).sum() > 500, "no heading above the table"


def test_chromium_renders_the_index(report, tmp_path):
    index, _, _, _ = report
    screen = screenshot(index, tmp_path)
    assert (screen.max(-1) < 128).sum() > 500, "the index page is blank"
    link = (screen[..., 2] > 150) & (screen[..., 0] < 100) & (screen[..., 1] < 100)
    assert link.sum() > 20, "no link to the layer page drawn"


def screenshot(page, tmp_path) -> np.ndarray:
    """uint8 [1600, 1200, 3]: `page` as headless Chromium draws it."""
    chromium = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if chromium is None:
        pytest.fail("chromium not found: these tests need a headless Chromium; "
                    "install Debian's package: apt-get install chromium")
    profile = tmp_path / f"profile-{page.stem}"
    png = tmp_path / f"{page.stem}.png"
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--hide-scrollbars", "--force-device-scale-factor=1",
               "--window-size=1200,1600", f"--screenshot={png}", page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and png.is_file(), f"chromium failed ({done.returncode}):\n{done.stderr[-2000:]}"
    return np.asarray(Image.open(png).convert("RGB"))


def locate(screen: np.ndarray, image: np.ndarray, tolerance: int = 8) -> tuple[int, int] | None:
    """(row, col) of the first place `image` [h, w, 3] is drawn in `screen` [H, W, 3], nearly pixel for pixel.

    Candidates are where the image's first 16 pixels match within `tolerance`;
    a candidate is the image if all its pixels differ by less than 2 on average.
    """
    screen, image = screen.astype(np.int16), image.astype(np.int16)
    (height, width), (rows, cols) = image.shape[:2], screen.shape[:2]
    if height > rows or width > cols:
        return None
    fits = np.ones((rows - height + 1, cols - width + 1), bool)
    for dx in range(16):
        fits &= (np.abs(screen[:rows - height + 1, dx:cols - width + 1 + dx] - image[0, dx]) <= tolerance).all(-1)
    for row, col in zip(*np.nonzero(fits)):
        if np.abs(screen[row:row + height, col:col + width] - image).mean() < 2:
            return int(row), int(col)
    return None
