"""interp: visual interpretability of convolutional networks, as JAX function transforms.

The foundation, which knows no method:

  * `ops`: plain-JAX building blocks that know no model: the jaxpr toolkit
    behind layer names, backward-rule rewrites (deconvnet, guided ReLU), the
    switch max-pool, running top-k, feature-map peaks, platform-aware speed
    rewrites.
  * `sharding`: meshes and shardings, one axis ('data'), for every family.
  * `nets`: the Flax model zoo, layer names (`tap`), the `Model` adapter every
    method uses (activations, gradients and parameters by layer name), weight
    import, receptive fields.
  * `data`: SynthParts (ground truth for every claim) and readers for real
    datasets, all batch sources (`len(source)`, `source.batch(indices)`).
  * `files`: arrays saved with a sha256 checksum verified on load
    (`save_arrays`, `load_arrays`), the checksums checkpoints carry.
  * `train`: optax training from composable loss factories, resumable orbax
    checkpoints, checksummed.

The method families, each a set of function transforms on a `Model`:

  * `attribution`: input attribution (gradients, IG, SmoothGrad, occlusion,
    CAM family, deconvnet, guided backprop).
  * `featviz`: feature visualization (objectives with an algebra,
    parameterizations, transforms, render), dataset examples, semantic
    dictionaries, inversion.
  * `dissect`: Network Dissection, and the part interpretability of filters
    it measures.
  * `explain`: post-hoc structure: the explanatory graph (each filter split
    into part nodes with spatial edges), its node stability and few-shot
    part localization.
  * `layers`: explainable building blocks (the interpretable conv layer and
    its loss).
  * `metrics`: what the families are evaluated with (localization,
    faithfulness, sanity, location instability).
  * `viz`: figures (functions returning matplotlib Figures).
  * `sweep`: grids of cells (networks x layers x units x methods x seeds)
    measured in compiled, sharded calls, durably, on one host or many.
  * `cli`: the `interp` command.
"""

__version__ = "0.1.0"
