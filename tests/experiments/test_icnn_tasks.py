"""The comparison's tasks are composed as the release composes its image sets (getImdb.m), without training."""

import numpy as np

from experiments.configs import IcnnConfig
from experiments.icnn_tasks import POSITIVE_SHARE, synthparts_tasks


def test_training_sets_mirror_every_object_and_one_category_is_three_quarters_positive():
    config = IcnnConfig(image_size=32, train_images=40, eval_images=32, framings=("whole",), single_classes=("car",))
    multi, car = synthparts_tasks(config, seed=0)
    assert (multi.key, car.key, multi.num_outputs, car.num_outputs) == ("multi/whole", "single_car/whole", 6, 1)
    train = multi.train.batch(np.arange(len(multi.train)))
    assert len(multi.train) == 80  # each object as is, then mirrored
    np.testing.assert_array_equal(train["image"][40:], train["image"][:40, :, ::-1])
    np.testing.assert_array_equal(train["label"][40:], train["label"][:40])
    np.testing.assert_allclose(multi.density, np.bincount(train["label"], minlength=6) / 80)

    single = car.train.batch(np.arange(len(car.train)))
    positives = int(single["label"].sum())
    assert set(np.unique(single["label"])) == {0, 1}
    assert abs(positives / len(car.train) - POSITIVE_SHARE) < 0.05
    np.testing.assert_allclose(car.density, [positives / len(car.train)])
    assert positives == 2 * int((train["label"][:40] == 2).sum())  # every car of the 40 objects, twice

    evaluated = car.eval.batch(np.arange(len(car.eval)))
    assert len(car.eval) == 32 and evaluated["label"].sum() == 16  # balanced: half cars, half the others
    np.testing.assert_array_equal(evaluated["label"], evaluated["category"] == 2)
    assert evaluated["landmarks"].shape[:1] == evaluated["landmark_visible"].shape[:1] == (32,)
    # Held out: the evaluation images are none of the training images.
    assert not any(np.array_equal(e, t) for e in evaluated["image"][:4] for t in train["image"])
