"""Test-wide JAX settings: shape bugs and sharding bugs surface on a laptop CPU."""

import os
import pathlib
import shutil
import uuid

# Must be set before jax initializes its backends. Eight host devices: sharding bugs surface on one CPU. The
# backend's lowest optimization level: the suite's programs are small and mostly run a few times, so compiling
# them dominates; at level 0 the suite takes about a quarter less time (`benchmarks/RESULTS.md`), and every
# threshold already holds across CPUs and on a GPU, so none depends on the optimizer's rounding.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_configure(config):
    """One persistent compilation cache per test run, shared by the xdist workers and the processes they start.

    Many tests compile the same small programs (a SmallCNN's training step, a
    dissection pass); each is compiled once per run instead of once per test.
    The cache starts empty on every run, as on a clean clone, so the suite's
    time stays what CI sees. `INTERP_TEST_COMPILATION_CACHE=0` turns it off.
    """
    if os.environ.get("INTERP_TEST_COMPILATION_CACHE", "1") == "0":
        return
    caches = pathlib.Path(config.rootpath) / ".pytest_cache" / "jax-compilation"
    worker = getattr(config, "workerinput", None)
    if worker is None:  # the run's first process: earlier runs' caches go
        shutil.rmtree(caches, ignore_errors=True)
    run = worker["testrunuid"] if worker else config.stash.setdefault(_RUN_ID, uuid.uuid4().hex)
    cache = caches / run
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache)  # the processes tests start read these too
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


_RUN_ID = pytest.StashKey[str]()

settings.register_profile("ci", max_examples=25, deadline=None)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def trained_small_cnn(request):
    """`{steps: (trained, random-init)}` SmallCNNs on SynthParts at 400 and 700 steps, trained once
    (`tests.trained`)."""
    from tests.trained import cached_small_cnn

    return cached_small_cnn(request.config.cache.mkdir("trained_small_cnn"))
