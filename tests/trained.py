"""The SmallCNN trained briefly on SynthParts that the test files needing a trained net share.

One run of 700 steps, whose state at step 400 is kept too: the tests written
for a 400-step net keep exactly their numbers (Adam has no schedule here, so
the 400-step state of the long run is the 400-step run's). Trained once per
configuration and code: the runs live in pytest's cache
(`.pytest_cache/d/trained_small_cnn/<hash>/<steps>`), keyed by the training
settings and the source of what the training depends on, so a rerun restores
the finished checkpoints instead of training. A file lock makes two xdist
workers that ask at once train once: the second waits, then restores.
"""

import fcntl
import hashlib
import json
import pathlib
import shutil

import jax
import optax

from interp import nets
from interp import train as trainlib
from interp.data import SynthParts

SNAPSHOTS, BATCH_SIZE, NUM_CLASSES, LEARNING_RATE = (400, 700), 32, 6, 2e-3
# What the trained weights depend on besides the settings above.
_SOURCES = ("interp/data", "interp/nets", "interp/ops", "interp/train", "tests/trained.py")


def train_small_cnn(workdir, steps: int, batch_size: int = BATCH_SIZE,
                    num_classes: int = NUM_CLASSES) -> tuple[nets.Model, nets.Model]:
    """(trained, random-init) SmallCNNs: Adam 2e-3 on SynthParts(seed=0, 64 px), read in index order."""
    data = SynthParts(seed=0, image_size=64, num_classes=num_classes)
    module = nets.create_module("small_cnn", num_classes=num_classes)
    state = trainlib.fit(
        module, optax.adam(LEARNING_RATE), data, num_steps=steps, batch_size=batch_size, workdir=workdir,
        shuffle=False, checkpoint_every=steps, log_every=steps, progress=False,
    )
    return state.model(), nets.create("small_cnn", num_classes=num_classes, key=jax.random.key(5))


def cached_small_cnn(cache_dir: pathlib.Path) -> dict[int, tuple[nets.Model, nets.Model]]:
    """`{steps: train_small_cnn(..., steps)}` for each of `SNAPSHOTS`, from one run cached under `cache_dir`.

    Each snapshot's run folder starts as a copy of the previous one's
    checkpoints, so the run resumes rather than starts over.
    """
    root = pathlib.Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(json.dumps([SNAPSHOTS, BATCH_SIZE, NUM_CLASSES, LEARNING_RATE]).encode())
    for name in _SOURCES:
        path = root / name
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(source.relative_to(root).as_posix().encode() + source.read_bytes())
    folder = cache_dir / digest.hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    models = {}
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        previous = None
        for steps in SNAPSHOTS:
            workdir = folder / str(steps)
            if previous is not None and not workdir.exists():
                shutil.copytree(previous / "checkpoints", workdir / "checkpoints")
            models[steps] = train_small_cnn(workdir, steps)
            previous = workdir
    return models
