"""`dissect.part_interpretability`: each filter's best IoU with a part concept."""

import numpy as np
import pytest

from interp import dissect, nets
from tests.dissect.test_dissect import SYNTH, PlantedImages, pooled_by_2


@pytest.mark.slow  # SynthParts' generator compiles once per process (shared with tests/dissect)
def test_part_interpretability_of_a_planted_part_unit_and_a_noise_unit():
    wheel = SYNTH.concepts().index(("part", "wheel"))
    data = PlantedImages(wheel, num_examples=32)
    # A unit is "on" at its top `quantile` of positions, so a mask unit reaches IoU 1 only at the quantile
    # equal to the share of pixels the part fills (see tests/dissect/test_dissect.py).
    share = float(data.base.batch(np.arange(32)).masks[:, wheel].mean())
    result = dissect.part_interpretability(nets.from_function(pooled_by_2), "planted", data, quantile=share,
                                           batch_size=32)
    assert result.per_filter[0] > 0.9
    assert result.per_filter[1] < 0.1
    assert data.concepts.names[result.part[0]] == "wheel"
    assert result.value == pytest.approx(result.per_filter.mean())
    # The best part IoU, not the best over all categories.
    part = data.concepts.categories.index("part")
    np.testing.assert_array_equal(result.per_filter, result.dissection.best_per_category[1][part])


class _NoParts:
    concepts = dissect.ConceptSet(names=("dog",), categories=("object",), category_of=(0,))


def test_bad_inputs_name_what_was_expected():
    model = nets.from_function(pooled_by_2)
    with pytest.raises(ValueError, match="data: expected concepts with a 'part' category"):
        dissect.part_interpretability(model, "pool", _NoParts())
    with pytest.raises(ValueError, match="layer: expected one layer name"):
        dissect.part_interpretability(model, ["pool"], _NoParts())
