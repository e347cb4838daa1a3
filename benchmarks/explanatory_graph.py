"""One EM iteration of one explanatory-graph layer: `interp.explain` against the NumPy transcription of the release.

Run: `python -m benchmarks.explanatory_graph [--images 1000] [--channels 64] [--reference-images 10]
[--batch-size 100] [--repeats 5] [--map-size 14] [--out benchmarks/results/explanatory_graph.json]`
(prints a markdown table; about 4 minutes on 2 CPU cores at the defaults).

The layer is VGG-16's conv5_3 as the release mines it (Zhang et al., AAAI 2018;
zqs1022/explanatoryGraph), scaled down to what the transcription's loops can
do: a 14 x 14 map of `--channels` filters, density 0.1 (P = 20 nodes per
filter), 6 x 6 candidate places, half-range 2 cells. It is the top layer in its
first iteration: no parents (curMu 0, curDelta 0.15 * 14 cells, curLambda 1),
and no choice of orientation (the images are read as they are, as
`explanatory_graph(..., flip=False)` does). Both sides get the same inputs,
made before any timing (seed 0): maps like ReLU'd normalized activations,
Gamma(0.5) - 0.3 (44% positive, float32), and node places drawn uniformly
over the map (continuous).

  * the release: `tests/explain/release_reference.py`, a loop-by-loop NumPy
    (float64) transcription of doE.m, getProb_local_mex.cpp, getOtherProb.cpp
    and the per-image body and updateModel of learn_explanatoryGraph.m, in the
    release's layout (column-major [P, C] nodes, 1-based places). Per image
    `e_step` then `image_update`; `m_step` on the sums at the end. It is slow
    (seconds per image), so it is timed on the first `--reference-images`
    images and its rate extrapolated (their time and updateModel's on their
    sums).
  * interp: what `explain.explanatory_graph` runs for one iteration of a layer
    (`interp.explain.mining._fit_layer`): `_e_pass`, the jitted `_e_chunk`
    (every node and every image of a chunk at once) over all `--images` images
    in chunks of `--batch-size`, maps sent from the host per chunk and the
    statistics fetched back, then the sums and `_em.m_step`. One first call
    compiles (its time, compiling and one pass, is reported apart); the rate
    is the median of `--repeats` calls after it.

The timed interp calls alternate with groups of the reference images, so a
change in the machine's load falls on both sides.

Before the times are reported, every per-image statistic of the first
`--reference-images` images (prob x prior sums, normalized sums, the
log-derivative shifts, the spread, the best candidate's place and value) and
the M-step's new places and deformations from their sums must agree within
float32 tolerance; the script stops otherwise. The best place may differ
where the release's own float64 values tie (`agreement`); such ties are
counted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import types
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp.explain import _em, mining
from tests.explain import release_reference as release

GOAL = 20.0  # the speed-up over the transcription this benchmark is meant to show
DEFAULT_OUT = os.path.join("benchmarks", "results", "explanatory_graph.json")

# The release's settings (getNetParameters.m) and the library's defaults.
DENSITY, CANDIDATES, MAX_RANGE, DEFORM_RATIO = 0.1, 6, 0.3, 3.0
INIT_DELTA, MAP_DELTA, VALID_TAU, ETA = 0.15, 0.025, 0.1, 1.0

# Agreement, float32 (interp) against float64 (the transcription): (rtol, atol) as tests/explain/test_release.py.
TOLERANCES = {"mass": (2e-5, 0.0), "norm_prob": (1e-4, 0.0), "shift": (1e-4, 1e-7), "spread": (2e-5, 0.0),
              "best": (2e-5, 0.0), "position": (0.0, 2e-5), "coord": (1e-5, 0.0), "deform": (1e-5, 0.0)}
TIE = 1e-12  # two candidates' float64 prob x prior this close (relative) are a tie: summation order apart, equal


class Inputs(NamedTuple):
    """One layer and its maps, in interp's layout; the release's layout is derived from it."""

    layer: mining.GraphLayer  # coord [C, P, 2] 0-based, deform [C, P], config
    x: np.ndarray  # float32 [N, h, w, C]
    x_flipped: np.ndarray  # the mirrored maps `_e_pass` is given (unread without a choice of orientation)


def make_inputs(images: int, channels: int, size: int = 14, seed: int = 0) -> Inputs:
    """A top layer as `explanatory_graph` builds it (`mining._initial_layer`), with continuous random places."""
    rng = np.random.default_rng(seed)
    x = (rng.gamma(0.5, 1.0, (images, size, size, channels)) - 0.3).astype(np.float32)
    field = types.SimpleNamespace(start=(8.0, 8.0), stride=(16.0, 16.0), size=(196.0, 196.0))  # conv5_3's
    layer = mining._initial_layer("conv5_3", (size, size, channels), DENSITY, field, np.ones((size, size, channels)),
                                  num_candidates=CANDIDATES, max_range=MAX_RANGE,
                                  deform_ratio=DEFORM_RATIO, init_delta=INIT_DELTA, map_delta=MAP_DELTA,
                                  valid_tau=VALID_TAU)
    coord = rng.uniform(0, size - 1, (channels, layer.num_patterns, 2)).astype(np.float32)
    layer = dataclasses.replace(layer, coord=jnp.asarray(coord))
    return Inputs(layer, x, np.ascontiguousarray(x[:, :, ::-1]))


def _bounds(layer) -> tuple[float, float]:
    return mining._deform_bounds(layer)


# ------------------------------------------------------------------------------------------------ interp


def interp_iteration(inputs: Inputs, batch_size: int) -> tuple[_em.ImageStats, _em.ModelUpdate]:
    """One iteration of `mining._fit_layer` on a top layer: per-image statistics [N, C, P, ...] and the update."""
    layer, x = inputs.layer, inputs.x
    flips = np.zeros(len(x), bool)  # the orientation is given: no choice
    stats, _ = mining._e_pass(layer, layer.coord, layer.deform, x, inputs.x_flipped, flips, None, batch_size, None)
    return stats, interp_m_step(layer, stats)


def interp_m_step(layer, stats: _em.ImageStats) -> _em.ModelUpdate:
    """`_fit_layer`'s M-step of its first iteration, on the sums of `stats` over its images."""
    min_deform, max_deform = _bounds(layer)
    totals = jax.tree.map(lambda a: jnp.sum(a, axis=0), stats)
    half_range = _em.half_ranges(layer.deform, layer.config)
    update = _em.m_step(layer.coord, layer.deform, half_range, totals, step=ETA * layer.init_delta**2,
                        min_deform=min_deform, max_deform=max_deform, num_candidates=layer.config.num_candidates)
    return jax.tree.map(np.asarray, update)


# ----------------------------------------------------------------------------------------------- release


class ReleaseLayout(NamedTuple):
    coord: np.ndarray  # float64 [2, P, C], 1-based
    deform: np.ndarray  # [P, C]
    cur_mu: np.ndarray  # [2, P*C]
    cur_delta: np.ndarray  # [P*C]
    cur_lambda: np.ndarray  # [P*C]


def release_layout(layer) -> ReleaseLayout:
    """The layer in the release's layout: node `ch * P + p`, places (row, col) 1-based; getCurDistribution's
    first-iteration terms (no parents)."""
    coord = np.asarray(layer.coord, np.float64).transpose(2, 1, 0) + 1
    deform = np.asarray(layer.deform, np.float64).T
    h = layer.config.map_shape[0]
    first = release.first_iteration(layer.num_nodes, 1, h, init_delta=INIT_DELTA)
    return ReleaseLayout(coord, deform, first["cur_mu"][..., 0], first["cur_delta"][:, 0], first["cur_lambda"][:, 0])


def release_image(inputs: Inputs, ours: ReleaseLayout, index: int) -> dict:
    """doE and the parfor body of learn_explanatoryGraph.m on image `index`: its `image_update`.

    The dict also holds `joint`, prob x prior [K*K, P*C], `candidates`, their places [2, K*K, P*C] (what
    `agreement` needs to tell a tie; a product more than the release computes), and `pos_cand`.
    """
    layer = inputs.layer
    e = release.e_step(inputs.x[index], ours.coord, ours.deform, ours.cur_mu, ours.cur_delta, ours.cur_lambda,
                       position_cand_num=CANDIDATES, map_delta_rate=MAP_DELTA, max_range=MAX_RANGE,
                       deform_ratio=DEFORM_RATIO, release_indexing=False)
    update = release.image_update(e["prob"], e["prior"], e["log_der"], e["pos"], layer.num_patterns,
                                  layer.num_channels, valid_tau=VALID_TAU)
    return dict(update, joint=e["prob"] * e["prior"], candidates=e["pos"], pos_cand=e["pos_cand"])


def release_m_step(inputs: Inputs, ours: ReleaseLayout, updates: list[dict]) -> dict:
    """updateModel on the sums of the images' `release_image`s (iteration 1: minDelta = min(curDelta))."""
    h = inputs.layer.config.map_shape[0]
    stack = lambda key: np.stack([u[key] for u in updates], axis=-1)  # noqa: E731
    min_deform, max_deform = _bounds(inputs.layer)
    # The release's posCand is the layer's first one; the deformation has not changed, so any image's.
    return release.m_step(stack("prob_sum"), stack("norm_prob_sum"), stack("log_der"), stack("pos_var"),
                          stack("position"), ours.coord, updates[0]["pos_cand"], xh=h, eta=ETA,
                          min_delta=float(ours.cur_delta.min()), max_delta_rate=max_deform / h,
                          min_delta_rate=min_deform / h)


def release_iteration(inputs: Inputs, images: int) -> tuple[list[dict], dict]:
    """The release's iteration on the first `images` maps: per-image `release_image`s and updateModel's result."""
    ours = release_layout(inputs.layer)
    updates = [release_image(inputs, ours, i) for i in range(images)]
    return updates, release_m_step(inputs, ours, updates)


# ------------------------------------------------------------------------------------------------ agreement


def _nodes(flat: np.ndarray, channels: int, patterns: int) -> np.ndarray:
    """The release's [..., P*C] (pattern fastest) as interp's [C, P, ...]."""
    a = np.asarray(flat, np.float64)
    lead = a.ndim - 1
    return np.moveaxis(a.reshape(*a.shape[:-1], channels, patterns), (lead, lead + 1), (0, 1))


def agreement(inputs: Inputs, ours: _em.ImageStats, ours_update: _em.ModelUpdate, theirs: list[dict],
              theirs_update: dict) -> dict[str, dict[str, float]]:
    """Per quantity, the largest absolute and relative difference interp - release over the reference images.

    The best candidate's place must be the release's, or another candidate whose prob x prior in the
    release's own float64 ties with the release's best (to `TIE`): mirrored candidates whose
    neighbourhoods differ only in zero cells have equal values, and float32 and float64 rounding each
    pick one. Such ties are counted (`position`'s `ties`) and left out of its differences.

    Raises:
      AssertionError: some quantity differs by more than its `TOLERANCES` (naming each one).
    """
    c, p = inputs.layer.num_channels, inputs.layer.num_patterns
    keys = {"mass": "prob_sum", "norm_prob": "norm_prob_sum", "shift": "log_der", "spread": "pos_var",
            "best": "inferred", "position": "position"}
    compared = {name: (np.asarray(getattr(ours, name)[:len(theirs)], np.float64),
                       np.stack([_nodes(u[key], c, p) for u in theirs])) for name, key in keys.items()}
    compared["position"] = (compared["position"][0], compared["position"][1] - 1)  # 1-based
    compared["coord"] = (ours_update.coord, theirs_update["coord"].transpose(2, 1, 0) - 1)
    compared["deform"] = (ours_update.deform, theirs_update["deform"].T)

    # Ties: interp's place is one of the release's candidates, whose prob x prior is the release's best.
    places = np.stack([_nodes(u["candidates"], c, p) - 1 for u in theirs])  # [R, C, P, 2, K*K]
    joint = np.stack([_nodes(u["joint"], c, p) for u in theirs])  # [R, C, P, K*K]
    ours_position, theirs_position = compared["position"]
    atol = TOLERANCES["position"][1]
    same = np.all(np.abs(places - ours_position[..., None]) <= atol, axis=-2)  # [R, C, P, K*K]
    chosen = np.where(same, joint, -np.inf).max(-1)
    tie = ~np.all(np.abs(ours_position - theirs_position) <= atol, axis=-1)
    tie &= chosen >= joint.max(-1) * (1 - TIE)
    compared["position"] = (np.where(tie[..., None], theirs_position, ours_position), theirs_position)

    found, problems = {}, []
    for name, (a, b) in compared.items():
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert a.shape == b.shape, f"{name}: shapes {a.shape} (interp) vs {b.shape} (release)"
        diff = np.abs(a - b)
        sizable = np.abs(b) > 1e-6 * np.abs(b).max()  # relative differences of the entries not ~0
        found[name] = {"max_abs": float(diff.max()),
                       "max_rel": float((diff[sizable] / np.abs(b[sizable])).max(initial=0.0))}
        rtol, atol = TOLERANCES[name]
        bad = diff > atol + rtol * np.abs(b)
        if bad.any() or not np.isfinite(a).all():
            first = tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else "non-finite"
            problems.append(f"{name}: {int(bad.sum())} of {bad.size} entries past rtol {rtol}, atol {atol}; "
                            f"max |diff| {diff.max():.3g}, first at {first}")
    found["position"]["ties"] = int(tie.sum())
    found["position"]["nodes"] = int(tie.size)
    if problems:
        raise AssertionError("interp and the release's transcription disagree:\n  " + "\n  ".join(problems))
    return found


# ----------------------------------------------------------------------------------------------- running


def _digits(value: float) -> str:
    """`value` to at least 4 significant digits, never in exponent notation: 0.2971, 27.94, 1,024."""
    decimals = max(0, 3 - math.floor(math.log10(value)))
    return f"{value:,.{decimals}f}"


def table(report: dict) -> str:
    """The markdown table `main` prints: one row per side of `report["rows"]`."""
    lines = ["| implementation | images timed | seconds for them | images/s | speed-up |", "|---|---:|---:|---:|---:|"]
    for row in report["rows"]:
        lines.append(f"| {row['implementation']} | {row['images']} | {_digits(row['seconds'])} "
                     f"| {_digits(row['images_per_s'])} | {row['speedup']:.1f}x |")
    return "\n".join(lines)


def run(images: int, channels: int, reference_images: int, batch_size: int, repeats: int,
        size: int = 14) -> dict:
    """Checks the agreement, times both sides and returns the report `main` prints and writes."""
    if not 0 < reference_images <= images:
        raise ValueError(f"reference_images: expected 1..{images}, got {reference_images}")
    load_start = os.getloadavg()[0]
    inputs = make_inputs(images, channels, size)
    layer = inputs.layer

    start = time.perf_counter()
    stats, _ = interp_iteration(inputs, batch_size)  # compiles _e_chunk and the M-step's operations
    first_s = time.perf_counter() - start

    # Alternating: each timed interp call, then the next group of reference images, so drift in the
    # machine's load falls on both sides.
    ours = release_layout(layer)
    groups = np.array_split(np.arange(reference_images), repeats)
    interp_s, release_s, theirs = [], [], []
    for group in groups:
        start = time.perf_counter()
        interp_iteration(inputs, batch_size)
        interp_s.append(time.perf_counter() - start)
        for i in group:
            start = time.perf_counter()
            theirs.append(release_image(inputs, ours, int(i)))
            release_s.append(time.perf_counter() - start)
    start = time.perf_counter()
    theirs_update = release_m_step(inputs, ours, theirs)
    release_total = sum(release_s) + time.perf_counter() - start

    subset = jax.tree.map(lambda a: a[:reference_images], stats)
    found = agreement(inputs, subset, interp_m_step(layer, subset), theirs, theirs_update)
    release_rate = reference_images / release_total
    interp_median = float(np.median(interp_s))
    speedup = images / interp_median / release_rate
    device = jax.devices()[0]
    return {
        "jax": jax.__version__, "numpy": np.__version__, "devices": str(jax.devices()),
        "platform": device.platform, "cpu_cores": len(os.sched_getaffinity(0)),
        "load_average": [load_start, os.getloadavg()[0]],
        "setup": {"map": [size, size], "channels": channels, "density": DENSITY,
                  "patterns": layer.num_patterns, "nodes": layer.num_nodes, "candidates": layer.config.num_candidates,
                  "half_range": int(np.asarray(_em.half_ranges(layer.deform, layer.config)).max()),
                  "images": images, "reference_images": reference_images, "batch_size": batch_size,
                  "repeats": repeats},
        "rows": [
            {"implementation": "release (NumPy transcription, float64)", "images": reference_images,
             "seconds": release_total, "runs_s": release_s, "images_per_s": release_rate, "speedup": 1.0},
            {"implementation": f"interp (jit, float32, chunks of {min(batch_size, images)})", "images": images,
             "seconds": interp_median, "runs_s": interp_s, "images_per_s": images / interp_median,
             "speedup": speedup},
        ],
        "interp_first_call_s": first_s,
        "speedup": speedup, "goal": GOAL, "goal_met": bool(speedup >= GOAL),
        "agreement": found,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="images interp runs the iteration on")
    parser.add_argument("--channels", type=int, default=64, help="filters of the layer (C)")
    parser.add_argument("--reference-images", type=int, default=10,
                        help="the first images the transcription is timed (and checked) on")
    parser.add_argument("--batch-size", type=int, default=100, help="images per compiled chunk")
    parser.add_argument("--repeats", type=int, default=5, help="timed interp calls after the compiling one")
    parser.add_argument("--map-size", type=int, default=14, help="the map's side (cells)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="the JSON report")
    args = parser.parse_args(argv)
    report = run(args.images, args.channels, args.reference_images, args.batch_size, args.repeats, args.map_size)
    setup = report["setup"]
    print(f"jax {report['jax']} {report['devices']}, {report['cpu_cores']} CPU cores, load average "
          f"{report['load_average'][0]:.1f} at the start and {report['load_average'][1]:.1f} at the end\n"
          f"one EM iteration of a top layer: {setup['map'][0]}x{setup['map'][1]} map, C = {setup['channels']}, "
          f"P = {setup['patterns']} ({setup['nodes']} nodes), K = {setup['candidates']}, half-range "
          f"{setup['half_range']}; interp's first call (compiling) {report['interp_first_call_s']:.2f} s\n")
    print(table(report))
    found = report["agreement"]
    print(f"\nagreement on the first {setup['reference_images']} images, within float32 tolerance; largest "
          "relative difference " + ", ".join(f"{name} {v['max_rel']:.1e}" for name, v in found.items()) +
          f"; best place a tie of the release's (float64, equal to {TIE:g}) on {found['position']['ties']} of "
          f"{found['position']['nodes']} node-images\nspeed-up {report['speedup']:.1f}x, goal {GOAL:.0f}x "
          + ("met" if report["goal_met"] else "NOT met"), flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    if report["load_average"][0] > report["cpu_cores"]:
        print("WARNING: the machine was busy at the start; rerun on an idle machine for stable numbers.",
              file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
