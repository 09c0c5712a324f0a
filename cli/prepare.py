"""`flatnas-tf prepare`: corrupted test images written once (TFDS CIFAR-10-C, or a built-in set)."""

from __future__ import annotations

import time
from typing import Any

import click

from flatnas_tf.cli import errors, inputs
from flatnas_tf.cli import options as opt
from flatnas_tf.defaults import SEVERITIES


@click.command()
@click.argument("dataset", type=click.Choice(["cifar10_corrupted", "corrupted"]))
@click.option(
    "--from",
    "archive",
    type=click.Path(dir_okay=False),
    default=None,
    help="cifar10_corrupted: the archive downloaded by hand, CIFAR-10-C.tar (2.9 GB, Zenodo).",
)
@opt.data_options
@opt.seed("corrupted: seed of the data split (use the search's).")
@click.option(
    "--corruptions",
    default=None,
    help="cifar10_corrupted: benchmark (the 15; default) or all (19). corrupted: builtin (all "
    "17 built-in and frost with --frost-dir; default), benchmark, all, or a comma list.",
)
@click.option(
    "--severities",
    default=",".join(map(str, SEVERITIES)),
    callback=lambda ctx, param, value: opt.severities(value),
    help="corrupted: the severities to write.",
)
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=None,
    help="corrupted: the first N test images only (default: all).",
)
@opt.FROST_DIR
@click.option("--out", default=None, help="corrupted: the directory to write the set to.")
@errors.fail_cleanly
@errors.quiet_tensorflow
def prepare(dataset: str, **options: Any) -> None:
    """Prepare corrupted test images once, for every later evaluation.

    cifar10_corrupted: TFDS's CIFAR-10-C from its archive downloaded by hand, offline
    (--from CIFAR-10-C.tar); `evaluate --ood cifar10_corrupted` then reads it from the TFDS
    data directory. TFDS verifies the archive's sha256 for each of the 75 (or 95) configs.

    corrupted: the test images of --data under the built-in corruptions, written to --out
    with their settings and checksums; `evaluate --ood DIR` and `search --ood DIR` read
    them instead of computing them (the same images: corruption seed 0, batches of 256).

    An interrupted run resumes where it stopped.
    """
    if dataset == "cifar10_corrupted":
        _prepare_cifar10_corrupted(options)
    else:
        _prepare_corrupted(options)


def _unused(options: dict[str, Any], names: tuple[str, ...], dataset: str) -> None:
    for name in names:
        if options[name] is not None:
            flag = "--" + ("from" if name == "archive" else name.replace("_", "-"))
            raise click.UsageError(f"{flag} is not an option of `prepare {dataset}`.")


def _prepare_cifar10_corrupted(options: dict[str, Any]) -> None:
    from flatnas_tf.data import import_tfds
    from flatnas_tf.robustness import cifar10_corrupted
    from flatnas_tf.tuners.progress import clock

    dataset = "cifar10_corrupted"
    _unused(options, ("out", "max_examples", "frost_dir"), dataset)
    if options["archive"] is None:
        raise click.UsageError("prepare cifar10_corrupted needs --from CIFAR-10-C.tar.")
    corruptions = options["corruptions"] or "benchmark"
    if corruptions not in ("benchmark", "all"):
        raise click.BadParameter(
            f"{corruptions!r}: cifar10_corrupted has benchmark or all.", param_hint="--corruptions"
        )
    data_dir = options["data_dir"]
    import_tfds().disable_progress_bar()  # one line per config instead
    names, _ = cifar10_corrupted.corruption_set(corruptions)
    total = len(names) * len(cifar10_corrupted.SEVERITIES)
    done = []
    start = time.monotonic()

    def on_config(config: str, prepared_now: bool) -> None:
        done.append(config)
        state = "prepared" if prepared_now else "already prepared"
        elapsed = clock(time.monotonic() - start)
        click.echo(f"[{len(done)}/{total}] {dataset}/{config} {state} ({elapsed})")

    try:
        cifar10_corrupted.prepare(options["archive"], data_dir, corruptions, on_config=on_config)
    except ValueError as error:  # the archive is not CIFAR-10-C.tar: says what is wrong
        raise click.BadParameter(str(error), param_hint="--from") from None
    root = cifar10_corrupted.data_root(data_dir)
    option = "" if data_dir is None else f" --data-dir {root}"
    click.echo(
        f"{dataset}: {total} configs ready in {root}. "
        f"Evaluate with: flatnas-tf evaluate TARGET --ood {dataset}{option}"
    )


def _prepare_corrupted(options: dict[str, Any]) -> None:
    from flatnas_tf.robustness.corrupted_set import write_corrupted_set
    from flatnas_tf.tuners.progress import clock

    _unused(options, ("archive",), "corrupted")
    if options["out"] is None:
        raise click.UsageError("prepare corrupted needs --out DIR: where to write the set.")
    inputs.check_frost_dir(options["frost_dir"])
    corruptions = options["corruptions"] or "builtin"
    if corruptions not in ("builtin", "benchmark", "all"):
        corruptions = [c.strip() for c in corruptions.split(",") if c.strip()]
    split = inputs.data_split(options)
    data = inputs.load_data(split)
    description = split.to_settings()
    start = time.monotonic()
    done: list[str] = []

    def on_corruption(name: str, written_now: bool) -> None:
        done.append(name)
        state = "written" if written_now else "already written"
        click.echo(f"[{len(done)}] {name} {state} ({clock(time.monotonic() - start)})")

    try:
        corrupted = write_corrupted_set(
            data,
            options["out"],
            corruptions,
            options["severities"],
            max_examples=options["max_examples"],
            frost_dir=options["frost_dir"],
            description=description,
            on_corruption=on_corruption,
        )
    except ValueError as error:  # CorruptedSetError is a usage error of its own
        if type(error) is not ValueError:
            raise
        raise click.BadParameter(str(error), param_hint="--corruptions") from None
    for name, why in corrupted.skipped.items():
        click.echo(f"{name} left out: {why}")
    click.echo(
        f"{len(corrupted.corruptions)} corruptions x {len(corrupted.severities)} severities of "
        f"{corrupted.examples} test images ready in {corrupted.directory}. "
        f"Evaluate with: flatnas-tf evaluate TARGET --ood {corrupted.directory}"
    )
