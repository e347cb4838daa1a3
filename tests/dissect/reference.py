"""Network Dissection's counts in plain loops over images and units, as NetDissect computes them."""

import numpy as np

from interp.dissect.tally import zero_counts


def brute_force_counts(on_maps, ids, masks, valid, category_of, num_concepts, num_categories):
    """Counts of binarized maps on [B, sh, sw, K] against concept masks, image by image, unit by unit."""
    units = on_maps.shape[-1]
    counts = zero_counts(units, num_concepts, num_categories)
    for b in np.flatnonzero(valid):
        labeled = [(c, m) for c, m in zip(ids[b], masks[b]) if m.any()]
        for c, m in labeled:
            counts.truth[c] += m.sum()
        has_category = {category_of[c] for c, _ in labeled} - {-1}
        for k in range(units):
            on = on_maps[b, :, :, k]
            counts.activation[k] += on.sum()
            overlapping = set()
            for c, m in labeled:
                counts.intersection[k, c] += (on & m).sum()
                if (on & m).any() and category_of[c] >= 0:
                    overlapping.add(category_of[c])
            for j in range(num_categories):
                counts.activation_category[k, j] += on.sum() * (j in has_category)
                counts.activation_lite[k, j] += on.sum() * (j in overlapping)
    return counts._replace(images=np.int64(valid.sum()))
