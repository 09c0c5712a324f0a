"""Test set-up shared by all modules.

TensorFlow is split into two logical CPU devices before anything runs, so the
tf.distribute tests can use a two-replica MirroredStrategy on any machine.
"""

from __future__ import annotations

import collections
import os
import pathlib
import sys

# One TensorFlow thread of each kind per test process: pytest-xdist already runs
# two processes on CI's 2 cores, and more threads than cores only contend (two
# modules side by side took 74-87 s this way against 89-107 s with TensorFlow's
# default pools). Set before TensorFlow starts; the CLI and worker
# subprocesses that tests start inherit it.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# The benchmark scripts' modules (reproduce, rank_stats) are tested as top-level imports.
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state and the default dtype policy."""
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def cifar_subset():
    """The shared real CIFAR-10 subset, or a skip when this machine lacks it."""
    import numpy as np

    path = SHARED_DATA / "cifar10_subset_dev.npz"
    if not path.exists():
        pytest.skip(f"real-image data not found at {path}")
    with np.load(path) as data:
        return {key: data[key] for key in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="session")
def two_replicas():
    """One two-replica MirroredStrategy for the whole session.

    TensorFlow's collective ops key their instances per process: a second
    MirroredStrategy over the same devices can collide with the first one's
    instance keys ("Shape mismatch in the collective instance"), so every test
    shares this one.
    """
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices")
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]])


@pytest.fixture(scope="module")
def digits():
    """(training, validation) batches of digits (`support.searches.digits_batches`)."""
    from support.searches import digits_batches

    return digits_batches()


@pytest.fixture(scope="module")
def digits_split():
    """(`DataSplit` of digits at seed 1, the data set it loads)."""
    from flatnas_tf.app.split import DataSplit

    split = DataSplit("digits", seed=1)
    return split, split.load()


#: Test modules that share a session fixture: one pytest-xdist worker runs
#: them all, so that it builds the fixture once.
SHARED_GROUPS = {
    "test_flatness_ood_study.py": "flatness_ood_smoke",
    "test_flatness_ood_search.py": "flatness_ood_smoke",
    "test_flatness_ood_paper.py": "flatness_ood_smoke",
}


#: The slowest modules (groups), slowest first: the workers take them before
#: the rest, so that the run does not end with one worker on a long module
#: while the other idles (longest-first scheduling). Seconds on CI's 2 cores,
#: roughly; a module not listed goes after these, in pytest-xdist's order.
SLOWEST_FIRST = (
    "test_cli.py",
    "test_ood.py",
    "test_readme.py",
    "test_distributed.py",
    "test_tuner.py",
    "flatness_ood_smoke",
    "test_durable.py",
    "test_sandwich.py",
    "test_weight_sharing_benchmark.py",
    "test_hypermodel.py",
    "test_weight_sharing.py",
    "test_surrogate_search.py",
    "test_tracing.py",
    "test_sam.py",
    "test_supernet_ranking.py",
    "test_reproduce.py",
    "test_supernet.py",
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` (pyproject.toml): `SHARED_GROUPS` as one file, `SLOWEST_FIRST` first.

    A worker runs a whole module, so that its module-scoped fixtures are built
    once. pytest-xdist's `loadgroup` would do the grouping by mark, but it
    reads the group from the test's node id, which pytest 9.2 no longer lets
    a plugin change; so the file scheduler's scope (`_split_scope`) is mapped,
    and its queue of scopes (`workqueue`, most tests first) is reordered.
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedGroupScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return SHARED_GROUPS.get(pathlib.PurePath(module).name, module)

        reordered = False

        def _assign_work_unit(self, node) -> None:
            if not self.reordered:  # before the first module is handed out
                rank = {name: n for n, name in enumerate(SLOWEST_FIRST)}
                queue = sorted(
                    self.workqueue.items(),
                    key=lambda item: rank.get(pathlib.PurePath(item[0]).name, len(rank)),
                )
                self.workqueue = collections.OrderedDict(queue)
                self.reordered = True
            super()._assign_work_unit(node)

    return SharedGroupScheduling(config, log)


@pytest.fixture(scope="session")
def flatness_ood_smoke(tmp_path_factory):
    """The study's two stages run once with their own --smoke settings, in one directory.

    Returns (root, {"study": (argv, returned), "search": (argv, returned)}):
    each stage's records are `root/<stage>.jsonl`, both share `root/work`.
    """
    import flatness_ood_search
    import flatness_ood_study

    root = tmp_path_factory.mktemp("flatness_ood_smoke")
    runs = {}
    for name, stage in (("study", flatness_ood_study), ("search", flatness_ood_search)):
        argv = ["--smoke", "--work", str(root / "work"), "--records", str(root / f"{name}.jsonl")]
        runs[name] = argv, stage.main(argv)
    return root, runs
