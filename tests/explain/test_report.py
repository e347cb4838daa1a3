"""The explanatory graph's report: every layer indexed, the requested nodes listed, strips cut where inferred."""

import html
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from interp import explain, nets, ops
from interp.explain import report as report_module
from interp.nets import tap

NODES = 5
PATCHES = 4


def _fn(x):
    tap(x[..., 2:], "lower")
    tap(x[..., :2], "upper")
    return x.mean(axis=(1, 2))


@pytest.fixture(scope="module")
def mined():
    model = nets.from_function(_fn)
    maps = np.random.default_rng(0).gamma(1, 1, (12, 8, 8, 4)).astype(np.float32)
    graph = explain.explanatory_graph(model, ["lower", "upper"], maps, iterations=2, progress=False)
    return graph, explain.infer(graph, model, maps, progress=False), maps


@pytest.fixture(scope="module")
def report(mined, tmp_path_factory):
    graph, found, maps = mined
    channels = maps[..., 2:]  # the lower layer's filters are the maps' last two channels
    flat = channels.reshape(12, 64, 2).argmax(axis=1)  # [N, C]
    peaks = (np.stack([flat // 8, flat % 8], axis=-1).astype(np.float32), channels.max(axis=(1, 2)))
    return report_module.write_report(graph, found, maps, tmp_path_factory.mktemp("report"),
                                      filter_peaks={"lower": peaks}, nodes_per_layer=NODES,
                                      images_per_node=PATCHES, progress=False), peaks


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.update([attrs["id"]] if "id" in attrs else [])
        self.links += [attrs[key] for key in ("href", "src") if key in attrs]


def _parse(path):
    parser = _Links()
    parser.feed(path.read_text())
    return parser


def test_index_lists_every_layer_with_its_counts(mined, report):
    graph, _, _ = mined
    index, _ = report
    page = index.read_text()
    for layer in graph.layers:
        row = re.search(rf'<tr><td><a href="{layer.name}.html">{layer.name}</a></td>(.*?)</tr>', page).group(1)
        numbers = [float(v) for v in re.findall(r'<td class="number">([0-9.]+)</td>', row)]
        assert numbers[:3] == [layer.num_channels, layer.num_patterns, layer.num_nodes]
        assert numbers[3] == pytest.approx(float(np.mean(layer.deform)), abs=0.005)
        assert numbers[4] == layer.parents.shape[1]  # the lower layer's parents per node; the top's none


def test_each_layer_page_lists_the_requested_best_nodes_by_mean_score(mined, report):
    graph, found, _ = mined
    index, _ = report
    for layer in graph.layers:
        page = (index.parent / f"{layer.name}.html").read_text()
        nodes = [int(n) for n in re.findall(r'<tr id="node(\d+)"', page)]
        best = np.argsort(-found[layer.name].scores.mean(axis=0), kind="stable")[:NODES]
        assert nodes == best.tolist()
        assert page.count(f'<img src="images/{layer.name}-node') == NODES  # one strip of node patches per row
        filters = page.count(f'<img src="images/{layer.name}-filter')
        assert filters == (NODES if layer.name == "lower" else 0)  # and one of its filter's where peaks are given


def test_links_are_relative_and_resolve_to_files_and_anchors(mined, report):
    graph, _, _ = mined
    index, _ = report
    parent_links = 0
    for path in [index, *(index.parent / f"{name}.html" for name in graph.layer_names)]:
        text = path.read_text()
        assert "http" not in text and "file:" not in text and str(index.parent) not in text
        for link in _parse(path).links:
            link = html.unescape(link)
            assert not link.startswith("/"), link
            target, _, anchor = link.partition("#")
            assert (index.parent / target).is_file(), link
            if anchor:
                assert anchor in _parse(index.parent / target).ids, link
                parent_links += 1
    assert parent_links > 0  # some parents of the lower layer's nodes are listed on the upper page


def test_a_nodes_strip_is_its_patches_at_its_inferred_places_on_its_best_images(mined, report):
    graph, found, maps = mined
    index, peaks = report
    layer = graph.layer("lower")
    node = int(np.argsort(-found["lower"].scores.mean(axis=0), kind="stable")[0])
    size, scale = 8, 8  # 3 x stride 1, raised to the least 8 pixels; enlarged to 64
    shown = report_module._displayable(maps)
    for kind, positions, scores in (("node", found["lower"].positions[:, node], found["lower"].scores[:, node]),
                                    ("filter", *(a[:, int(layer.node_channel(node))] for a in peaks))):
        number = f"{node:05d}" if kind == "node" else f"{int(layer.node_channel(node)):04d}"
        strip = np.asarray(Image.open(index.parent / f"images/lower-{kind}{number}.png")).astype(float)
        tile = size * scale
        assert strip.shape == (tile, PATCHES * tile + (PATCHES - 1) * report_module.GAP, 3)
        for slot, n in enumerate(np.argsort(-scores, kind="stable")[:PATCHES]):
            patch = ops.image_patch(shown[n], positions[n], size)
            want = np.repeat(np.repeat(patch, scale, 0), scale, 1) * 255
            got = strip[:, slot * (tile + report_module.GAP):][:, :tile]
            assert np.abs(got - want).max() <= 0.51, (kind, slot)


def test_displayable_keeps_rgb_in_range_and_greys_other_channels():
    rgb = np.random.default_rng(0).uniform(size=(2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(report_module._displayable(rgb), rgb)
    four = np.stack([np.full((4, 4), v, np.float32) for v in (0, 2, 4, 6)], axis=-1)[None]
    shown = report_module._displayable(np.concatenate([four, 0 * four]))
    assert shown.shape == (2, 4, 4, 3) and shown.min() == 0 and shown.max() == 1  # mean 3 and 0, stretched


def test_report_rejects_an_inference_on_other_images(mined, tmp_path):
    graph, found, maps = mined
    with pytest.raises(ValueError, match="infer the graph on these images"):
        report_module.write_report(graph, found, maps[:6], tmp_path)
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        report_module.write_report(graph, found, maps, tmp_path, filter_peaks={"conv9": (None, None)})
