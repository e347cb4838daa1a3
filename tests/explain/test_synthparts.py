"""On SynthParts with a trained SmallCNN: three annotated images localize a part better through the graph's
nodes than through raw filter peaks, and the nodes are steadier than the filters."""

import jax.numpy as jnp
import numpy as np

from interp import explain, metrics
from interp.data import SynthParts, object_crops


def test_three_shots_localize_parts_better_through_nodes_than_raw_filters(trained_small_cnn):
    model = trained_small_cnn[700][0]
    held_out = SynthParts(seed=1, image_size=64, num_classes=6)  # images the network never saw
    stream = object_crops(held_out)  # objects cut to their boxes, as the paper's images are
    batch = {k: np.asarray(v) for k, v in stream.batch(jnp.arange(384)).items()}
    birds = np.flatnonzero(batch["label"] == held_out.class_names.index("bird"))
    mine, test = birds[:40], birds[40:]
    others = np.flatnonzero(batch["label"] != held_out.class_names.index("bird"))[:48]
    parts = np.flatnonzero(batch["landmark_visible"][birds].mean(0) > 0.5)
    graph = explain.explanatory_graph(model, ["relu3", "relu4"], batch["image"][mine],
                                      negatives=batch["image"][others], iterations=5, progress=False)
    shots = mine[:3]
    found = {n: explain.infer(graph, model, batch["image"][rows], progress=False)
             for n, rows in (("shots", shots), ("test", test))}
    peaks = {n: explain.filter_peaks(graph, model, batch["image"][rows])
             for n, rows in (("shots", shots), ("test", test))}
    errors = {"nodes": [], "filters": []}
    for p in parts:
        args = dict(part=batch["landmarks"][shots, p], visible=batch["landmark_visible"][shots, p],
                    image_size=(64, 64))
        truth = (batch["landmarks"][test, p], batch["landmark_visible"][test, p], (64, 64))
        nodes = explain.fit_part_locator(found["shots"]["relu4"].positions, found["shots"]["relu4"].scores,
                                         flipped=found["shots"].flipped, **args)
        guess = explain.locate_part(nodes, found["test"]["relu4"].positions, found["test"]["relu4"].scores,
                                    flipped=found["test"].flipped)
        errors["nodes"].append(metrics.normalized_distance(guess, *truth))
        filters = explain.fit_part_locator(peaks["shots"]["relu4"].positions, peaks["shots"]["relu4"].scores, **args)
        guess = explain.locate_part(filters, peaks["test"]["relu4"].positions, peaks["test"]["relu4"].scores)
        errors["filters"].append(metrics.normalized_distance(guess, *truth))
    node_error, filter_error = np.mean(errors["nodes"]), np.mean(errors["filters"])
    print(f"MEASURED 3-shot normalized distance over {len(parts)} bird parts: nodes {node_error:.3f}, "
          f"raw filters {filter_error:.3f}")
    assert node_error < 0.85 * filter_error

    mine_found = explain.infer(graph, model, batch["image"][mine], progress=False)
    mine_peaks = explain.filter_peaks(graph, model, batch["image"][mine])
    stability = explain.node_stability(graph, mine_found, mine_peaks, batch["landmarks"][mine][:, parts],
                                       batch["landmark_visible"][mine][:, parts])
    print("MEASURED stability, nodes vs filters:",
          {name: (round(s.nodes.value, 4), round(s.filters.value, 4)) for name, s in stability.items()})
    assert stability["relu4"].nodes.value < stability["relu4"].filters.value
