"""The `nas` command: a thin layer over the library.

Every `NasError` becomes one line on stderr and exit status 2; Ctrl-C exits 130 after Optuna
has marked the running trial failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from nas.errors import ConfigError, NasError

FLOPS_NOTE = "FLOPs: fvcore counts, one multiply-add = one flop, per input image"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own one line per trial instead
    try:
        return args.run(args) or 0
    except NasError as error:
        print(f"nas {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nnas {args.command}: interrupted; the running trial is marked failed, finished trials are kept. "
              "Run the same command again to resume.", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Search where to put attention blocks in a CNN.")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("search", help="create or resume a study and run it to its trial target")
    p.add_argument("study", type=Path, help="study file (YAML)")
    p.add_argument("--trials", type=int, help="target number of finished trials (overrides the file)")
    p.add_argument("--storage", help="storage URL (overrides the file), e.g. postgresql://user:pw@host/db")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--timeout", type=float, help="start no new trial after this many seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_search)

    p = sub.add_parser("front", help="print (and plot) the study's Pareto front")
    p.add_argument("study", type=Path)
    p.add_argument("--storage")
    p.add_argument("--plot", type=Path, help="write a plot: FILE.png or FILE.html")
    p.add_argument("--json", action="store_true", help="print the front as JSON")
    p.add_argument("--refined", action="store_true", help="the front of refined results (after nas refine)")
    p.set_defaults(run=_front)

    p = sub.add_parser("export", help="write the chosen architecture as an ArchConfig YAML")
    p.add_argument("study", type=Path)
    p.add_argument("--pick", default="knee", help="knee | accuracy | flops | trial:N (default: knee)")
    p.add_argument("--max-mflops", type=float, help="only front trials at or under this many MFLOPs")
    p.add_argument("--min-accuracy", type=float, help="only front trials at or over this accuracy")
    p.add_argument("--refined", action="store_true", help="pick from the refined front (after nas refine)")
    p.add_argument("--storage")
    p.add_argument("-o", "--output", type=Path, required=True, help="output YAML file")
    p.set_defaults(run=_export)

    p = sub.add_parser("check", help="validate a study file and show what would run, without training")
    p.add_argument("study", type=Path)
    p.add_argument("--storage")
    p.set_defaults(run=_check)

    p = sub.add_parser("train", help="train an architecture at full length; report validation and test accuracy")
    p.add_argument("arch", type=Path, help="ArchConfig YAML/JSON (for example from nas export)")
    p.add_argument("--dataset", required=True, help="fashion-mnist, mnist, cifar10, cifar100, imagefolder, synthetic")
    p.add_argument("--path", type=Path, help="dataset folder (imagefolder)")
    p.add_argument("--subset", type=int, help="class-balanced training subset size")
    p.add_argument("--image-size", type=int, help="resize images to this size")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, help="peak learning rate (default: the proxy's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--save", type=Path, help="save the trained weights (state dict) here")
    p.set_defaults(run=_train)

    p = sub.add_parser("refine", help="retrain the front at a higher fidelity over several seeds")
    p.add_argument("study", type=Path)
    p.add_argument("--top", type=int, default=8, help="front and near-front architectures to retrain (default 8)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: 3x the proxy's)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per architecture (default 3)")
    p.add_argument("--device", default="auto")
    p.add_argument("--storage")
    p.set_defaults(run=_refine)

    p = sub.add_parser("dashboard", help="serve optuna-dashboard for the study on 127.0.0.1")
    p.add_argument("study", type=Path)
    p.add_argument("--storage")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(run=_dashboard)
    return parser


def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from nas.studyfile import load_study_config

    return load_study_config(args.study, args.storage)


def _load_data(config):  # type: ignore[no-untyped-def]
    from nas.data import load_dataset

    return load_dataset(**config.dataset)


def _search(args: argparse.Namespace) -> int:
    from nas.storage import masked
    from nas.study import run_search
    from nas.train import resolve_device

    config = _config(args)
    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials = {args.trials} is invalid; allowed: an integer >= 1")
    resolve_device(args.device)
    data = _load_data(config)
    run_search(config, data, device=args.device, trials=args.trials, timeout=args.timeout,
               progress=False if args.no_progress else None)
    print(f"done. Inspect: nas front {args.study}   or   optuna-dashboard {masked(config.storage)}")
    return 0


def _study(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from nas.study import open_study

    config = _config(args)
    study, _ = open_study(config, create=False)
    return config, study


def _front(args: argparse.Namespace) -> int:
    from nas.front import format_table, front_rows, knee, plot_front

    config, study = _study(args)
    rows = _refined(config, study) if args.refined else front_rows(study)
    if args.json:
        print(json.dumps([{"trial": r.number, **r.values, "mflops": r.mflops, "params": r.params,
                           "arch_id": r.arch_id, "baseline": r.baseline} for r in rows], indent=1))
    elif not rows:
        print(f"study {config.name!r} has no finished trial yet")
    else:
        kind = "refined front (mean ± std accuracy over seeds)" if args.refined else "Pareto front"
        print(f"{kind} of study {config.name!r} ({len(rows)} architectures; {FLOPS_NOTE}):")
        print(format_table(rows, knee(rows)))
    if args.plot is not None:
        plot_front(study, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _refine(args: argparse.Namespace) -> int:
    from nas.front import format_table, knee
    from nas.refine import refined_rows, run_refine
    from nas.train import resolve_device

    for name in ("top", "seeds", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} = {value} is invalid; allowed: an integer >= 1")
    resolve_device(args.device)
    config, study = _study(args)
    data = _load_data(config)
    run_refine(config, study, data, top=args.top, epochs=args.epochs, seeds=args.seeds, device=args.device)
    rows = refined_rows(config, study)
    print(f"refined front of study {config.name!r} (mean accuracy over seeds; {FLOPS_NOTE}):")
    print(format_table(rows, knee(rows)))
    return 0


def _refined(config, study):  # type: ignore[no-untyped-def]
    from nas.refine import refined_rows

    return refined_rows(config, study)


def _export(args: argparse.Namespace) -> int:
    from nas.export import export_document, pick, write_export

    if not args.output.parent.is_dir():
        raise ConfigError(f"-o {args.output}: the folder {args.output.parent} does not exist")
    config, study = _study(args)
    rows = _refined(config, study) if args.refined else None
    chosen = pick(study, args.pick, args.max_mflops, args.min_accuracy, rows)
    write_export(export_document(study, chosen, args.pick, config.storage), args.output)
    print(f"exported trial #{chosen.number} ({args.pick}): accuracy {chosen.accuracy:.4f}, "
          f"{chosen.mflops:.2f} MFLOPs, {chosen.params:,} params\n  {chosen.arch_id}\n  -> {args.output}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from nas.cost import arch_cost

    config = _config(args)
    data = _load_data(config)
    template = config.template(data.num_classes, data.in_chans)
    n = len(template.stages)
    searched = config.space.searched_stages(n)
    print(f"study {config.name!r} ({config.path})")
    print(f"  storage     {config.storage}")
    print(f"  backbone    {config.backbone} {dict(config.backbone_args)}: {n} stages, searching stages "
          f"{', '.join(map(str, searched))}")
    print(f"  dataset     {data!r}")
    print(f"  space       {config.space.stage_choices()} choices per stage -> "
          f"{config.space.size(n):,} distinct architectures")
    print(f"  proxy       {config.proxy.to_dict()}")
    print(f"  objectives  {', '.join(config.objectives)}; sampler {config.sampler}; target {config.trials} trials")
    limits = {k: v for k, v in (("max_mflops", config.max_mflops), ("max_params", config.max_params)) if v}
    print(f"  constraints {limits or 'none'}")
    print(f"  baselines ({FLOPS_NOTE}, at {data.image_size[0]}x{data.image_size[1]}):")
    for label, spec in config.baselines:
        arch = config.baseline_arch(spec, data.num_classes, data.in_chans)
        cost = arch_cost(arch, data.image_size)
        in_space = "in space" if config.space.params_for(arch) is not None else "outside the space"
        print(f"    {label:<6} {cost.mflops:9.3f} MFLOPs {cost.params:>10,} params  {arch.arch_id}  ({in_space})")
    print("ok: nothing was written")
    return 0


def _train(args: argparse.Namespace) -> int:
    import torch

    from nas.arch import load_arch
    from nas.build import build_model
    from nas.data import load_dataset
    from nas.train import ProxyConfig, evaluate, resolve_device, train_proxy

    arch = load_arch(args.arch)
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, path=args.path, subset=args.subset, image_size=args.image_size,
                        seed=args.seed, in_chans=arch.in_chans)
    if data.num_classes != arch.num_classes:
        print(f"note: {args.dataset} has {data.num_classes} classes; the architecture's head is resized from "
              f"{arch.num_classes}", file=sys.stderr)
        arch = dataclasses.replace(arch, num_classes=data.num_classes)
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed}
    if args.lr is not None:
        settings["lr"] = args.lr
    config = ProxyConfig.from_dict(settings)
    print(f"training {arch.arch_id} on {data!r} for {args.epochs} epochs on {device}")
    model = build_model(arch)
    result = train_proxy(model, data, config, device)
    print(f"validation accuracy {result.accuracy:.4f} (loss {result.loss:.4f}) after {result.epochs_done:g} epochs, "
          f"{result.seconds:.1f} s, {result.images_per_second:.0f} images/s")
    if data.test is not None:
        test_acc, test_loss = evaluate(model, data.test, data, device)
        print(f"test accuracy {test_acc:.4f} (loss {test_loss:.4f}) on {len(data.test)} images")
    else:
        print("this dataset has no test split; only validation accuracy is reported")
    if args.save is not None:
        torch.save(model.state_dict(), args.save)
        print(f"weights saved to {args.save}")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    from nas.storage import masked

    config = _config(args)
    _study(args)  # refuse a missing study before serving
    print(f"optuna-dashboard for study {config.name!r} ({masked(config.storage)})")
    print(f"open http://127.0.0.1:{args.port}/dashboard  (Ctrl-C to stop)", flush=True)
    optuna_dashboard.run_server(config.storage, host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
