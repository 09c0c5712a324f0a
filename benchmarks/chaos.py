"""A distributed search under chaos: processes killed at random moments and started again.

Issue 28's measure. A chief and `--workers` workers (`FlatNASTuner`, the
project's distributed machinery: leases, attempts, the token, a restarted
chief keeping its leases) search a two-variable space on loopback, with
instant trials whose figures are a function of the configuration, so that
every figure and every checkpoint can be checked:

    trial       sleep U(`--trial-s`), then val_accuracy = 0.5 + a / 128,
                robustness = b / 8, params = 1000 + 10 a + b; the
                checkpoint (the file of the attempt, moved into place by the
                chief) holds the same figures as JSON
    chaos       `--rounds` times: wait U(0.5, 3) s, SIGKILL one live process
                chosen at random (the chief among them), start it again with
                the same command after U(0, `--max-down-s`) s; every
                `--intruder-every` rounds, also start a worker with a wrong
                token while the chief serves, which must be refused (exit 2)
                and take no trial
    end         once the rounds are done, nothing is killed; the search must
                end on its own (every process exits 0) within `--timeout-s`

Checked at the end, from the search directory:

    lost         trials of the budget not COMPLETED
    duplicated   configurations completed twice
    mismatched   completed trials whose figures are not f(configuration), or
                 whose checkpoint does not hold them
    refused      intruders refused (exit 2); served: intruders that took a
                 trial or ended as a worker does (exit 0)
    longest_wait the longest a worker's create_trial call waited (a chief
                 that is away makes it wait; `--chief-timeout` bounds it)

Target: 50 rounds, 0 lost, 0 duplicated, 0 mismatched, 0 intruders served.

Usage:
    python benchmarks/chaos.py [--rounds 50] [--workers 3] [--trials 80]
        [--out docs/benchmarks/chaos.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import add_out_argument, report  # noqa: E402

PROJECT = "search"
WAITS = "waits.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--rounds", type=int, default=50)
    add("--workers", type=int, default=3)
    add("--trials", type=int, default=150, help="The search's budget (outlasting the rounds).")
    add("--population", type=int, default=8)
    add("--trial-s", type=float, nargs=2, default=[0.2, 1.5], help="Trial length bounds.")
    add("--lease-s", type=float, default=8.0, help="The chief's --worker-timeout.")
    add("--chief-timeout-s", type=float, default=120.0)
    add("--max-down-s", type=float, default=4.0)
    add("--intruder-every", type=int, default=10)
    add("--timeout-s", type=float, default=600.0, help="Bound of the end, after the rounds.")
    add("--seed", type=int, default=0)
    add("--role", choices=("chief", "worker"), help=argparse.SUPPRESS)  # a process of the run
    add("--directory", help=argparse.SUPPRESS)
    add("--token-file", help=argparse.SUPPRESS)
    add_out_argument(parser, "chaos")
    return parser.parse_args(argv)


def figures_of(values: dict) -> dict[str, float]:
    """A trial's figures: a function of its configuration (module docstring)."""
    a, b = values["a"], values["b"]
    return {
        "val_accuracy": 0.5 + a / 128,
        "robustness": b / 8,
        "params": float(1000 + 10 * a + b),
        "chance_p_value": 0.0,
    }


# -- one process of the search ---------------------------------------------------------


def _process(args: argparse.Namespace) -> int:
    """A chief or a worker (roles from KerasTuner's environment variables)."""
    import keras_tuner

    from flatnas_tf.persistence import storage
    from flatnas_tf.tuners import FlatNASTuner

    class Space(keras_tuner.HyperModel):
        declares_whole_space = True

        def declare_hyperparameters(self, hp):
            hp.Int("a", 0, 63)
            hp.Int("b", 0, 63)

        def build(self, hp):  # never trained: the figures are computed
            raise AssertionError("a chaos trial builds no model")

        def count_params(self, hp):
            return int(figures_of(hp.values)["params"])

    class InstantTuner(FlatNASTuner):
        def train_and_measure(self, hp, *fit_args, **fit_kwargs):
            time.sleep(random.uniform(*args.trial_s))
            measured = figures_of(hp.values)
            del measured["params"]
            self._measured = (dict(hp.values), measured)
            return None, measured

        def save_checkpoint(self, trial_id, model):
            values, measured = self._measured
            with storage.atomic_path(self.checkpoint_path(trial_id)) as temporary:
                temporary.write_text(json.dumps({"values": values, **measured}))

    chief = args.role == "chief"
    tuner = InstantTuner(
        Space(),
        mode="flatnas",
        max_params=None,
        chance_significance=None,
        population_size=args.population,
        max_trials=args.trials,
        seed=args.seed,
        trial_lease_s=args.lease_s if chief else None,
        token_file=args.token_file,
        chief_timeout_s=args.chief_timeout_s,
        directory=args.directory,
        project_name=PROJECT,
        overwrite=False,
    )
    if not chief:  # each create_trial: how long it waited, what it was given
        create = tuner.oracle.create_trial

        def timed(tuner_id):
            started, status = time.monotonic(), "error"
            try:
                trial = create(tuner_id)
                status = trial.status
                return trial
            finally:
                seconds = time.monotonic() - started
                line = json.dumps({"id": tuner_id, "s": seconds, "status": status})
                with open(pathlib.Path(args.directory) / WAITS, "a") as waits:
                    waits.write(line + "\n")

        tuner.oracle.create_trial = timed
    try:
        tuner.search(verbose=1)
    except Exception as error:
        import grpc

        if isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.UNAUTHENTICATED:
            print(error.details(), flush=True)
            return 2  # as `flatnas-tf search` ends a refused worker
        raise
    return 0


# -- the driver --------------------------------------------------------------------------


class Search:
    """The processes of one search in `root`, started and killed by name."""

    def __init__(self, args: argparse.Namespace, root: pathlib.Path):
        self.args, self.root = args, root
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.running: dict[str, subprocess.Popen] = {}
        self.exits: list[tuple[str, int]] = []
        self.started = 0

    def start(self, name: str, token_file: str | None = None) -> subprocess.Popen:
        tuner_id = "chief" if name == "chief" else name
        env = {
            **os.environ,
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(self.port),
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "OMP_NUM_THREADS": "1",
        }
        command = [sys.executable, __file__, "--role", "chief" if name == "chief" else "worker"]
        command += ["--directory", str(self.root)]
        for flag in ("trials", "population", "lease_s", "chief_timeout_s", "seed"):
            command += [f"--{flag.replace('_', '-')}", str(getattr(self.args, flag))]
        command += ["--trial-s", *map(str, self.args.trial_s)]
        if token_file:
            command += ["--token-file", token_file]
        self.started += 1
        with open(self.root / f"{self.started:03d}-{name}.out", "w") as output:
            process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=self.root
            )
        if name != "intruder":
            self.running[name] = process
        return process

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()

    def reap(self) -> None:
        """Forgets processes that ended by themselves, keeping their exit codes."""
        for name, process in list(self.running.items()):
            if process.poll() is not None:
                self.exits.append((name, process.returncode))
                del self.running[name]

    def close(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def tuner_id_is_worker(tuner_id: str) -> bool:
    """Whether a process is one of the search's workers (not the chief, not an intruder)."""
    return tuner_id.startswith("tuner")


def _intrude(search: Search, rng: random.Random) -> int | None:
    """A worker with a wrong token; returns its exit code (2: refused), None if it hung."""
    wrong = search.root / "wrong-token"
    wrong.write_text(f"not-the-token-{rng.random()}\n")
    wrong.chmod(0o600)
    intruder = search.start("intruder", token_file=str(wrong))
    try:
        return intruder.wait(timeout=search.args.chief_timeout_s + 60)
    except subprocess.TimeoutExpired:
        intruder.kill()
        intruder.wait()
        return None


def _calls(root: pathlib.Path) -> list[dict]:
    """Every create_trial call of a non-chief process: id, seconds, status given."""
    lines = (root / WAITS).read_text().splitlines() if (root / WAITS).exists() else []
    return [json.loads(line) for line in lines]


def check(root: pathlib.Path, trials: int) -> dict[str, int]:
    """Lost, duplicated and mismatched trials of a finished search (module docstring)."""
    from flatnas_tf import compat

    completed, configurations, mismatched = 0, [], 0
    for trial_dir in sorted((root / PROJECT).glob("trial_*")):
        state = json.loads((trial_dir / "trial.json").read_text())
        if state["status"] != "COMPLETED":
            continue
        completed += 1
        values = state["hyperparameters"]["values"]
        configurations.append((values["a"], values["b"]))
        metrics = {
            name: entry["observations"][-1]["value"][0]
            for name, entry in state["metrics"]["metrics"].items()
        }
        expected = figures_of(values)
        checkpoint = trial_dir / compat.CHECKPOINT_FILE
        saved = json.loads(checkpoint.read_text()) if checkpoint.exists() else {}
        if any(abs(metrics.get(k, float("nan")) - v) > 1e-9 for k, v in expected.items()) or any(
            saved.get(k) != v for k, v in expected.items() if k != "params"
        ):
            mismatched += 1
    return {
        "completed": completed,
        "lost": max(0, trials - completed),
        "duplicated": len(configurations) - len(set(configurations)),
        "mismatched": mismatched,
    }


def main(argv: list[str] | None = None) -> dict | None:
    """The driver, or one process of the run with --role (see the module docstring)."""
    args = parse_args(argv)
    if args.role:
        sys.exit(_process(args))
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        root = pathlib.Path(directory)
        search = Search(args, root)
        kills = {"chief": 0, "worker": 0}
        intruder_exits: list[int | None] = []
        try:
            search.start("chief")
            for i in range(args.workers):
                search.start(f"tuner{i}")
            for round_number in range(1, args.rounds + 1):
                time.sleep(rng.uniform(0.5, 3.0))
                search.reap()
                if "chief" not in search.running:
                    break  # the search ended before the rounds did
                name = rng.choice(sorted(search.running))
                search.kill(name)
                kills["chief" if name == "chief" else "worker"] += 1
                time.sleep(rng.uniform(0.0, args.max_down_s))
                search.start(name)
                serving = search.running.get("chief")
                if args.intruder_every and round_number % args.intruder_every == 0:
                    time.sleep(5.0)  # the restarted chief serving again, if it was the one killed
                    if serving is not None and serving.poll() is None:
                        intruder_exits.append(_intrude(search, rng))
                print(f"round {round_number}: killed {name}", file=sys.stderr, flush=True)
            deadline = time.monotonic() + args.timeout_s
            while search.running and time.monotonic() < deadline:
                time.sleep(0.5)
                search.reap()
            ended_in_time = not search.running
        finally:
            search.close()
        calls = _calls(root)
        waits = [c["s"] for c in calls if tuner_id_is_worker(c["id"])]
        figures = {
            "rounds": sum(kills.values()),
            "kills": kills,
            **check(root, args.trials),
            "intruders": len(intruder_exits),
            "intruders_refused": intruder_exits.count(2),
            "intruders_served": sum(
                not tuner_id_is_worker(c["id"]) and c["status"] == "RUNNING" for c in calls
            ),
            "ended_in_time": ended_in_time,
            "failed_exits": [name for name, code in search.exits if code != 0],
            "longest_wait_s": round(max(waits, default=0.0), 2),
            "wall_s": round(time.monotonic() - started, 1),
        }
    return report("chaos", figures, args)


if __name__ == "__main__":
    main()
