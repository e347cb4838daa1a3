"""Test-wide JAX settings: shape bugs and sharding bugs surface on a laptop CPU."""

import os

# Must be set before jax initializes its backends.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile("ci", max_examples=25, deadline=None)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def trained_small_cnn(request):
    """`{steps: (trained, random-init)}` SmallCNNs on SynthParts at 400 and 700 steps, trained once
    (`tests.trained`)."""
    from tests.trained import cached_small_cnn

    return cached_small_cnn(request.config.cache.mkdir("trained_small_cnn"))
