"""The `nas` command: a thin layer over the library.

Every `NasError` becomes one line on stderr and exit status 2; Ctrl-C exits 130 and SIGTERM 143
after Optuna has marked the running trial failed (see `nas.interrupts`); a closed pipe on stdout
ends the command quietly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from nas import interrupts
from nas.errors import ConfigError, NasError, Terminated

FLOPS_NOTE = "FLOPs: fvcore counts, one multiply-add = one flop, per input image"


def main(argv: Sequence[str] | None = None) -> int:
    interrupts.install()
    command = "nas"
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        command = f"nas {args.command}"
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own one line per trial instead
        return args.run(args) or 0
    except NasError as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM as Terminated, at any moment
        interrupts.ignore_further()
        what = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted"
        kept = ("what was measured is kept in the table's .partial file, no table is written"
                if command == "nas latency-table" else "finished trials are kept and a running one is marked failed")
        print(f"\n{command}: {what}; {kept}. Run the same command again to resume.", file=sys.stderr)
        return interrupts.EXIT[signal.SIGTERM] if isinstance(interrupt, Terminated) else interrupts.EXIT[signal.SIGINT]
    except BrokenPipeError:  # `nas search ... | head`: the reader left; stop quietly, as `yes | head` does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
        return 128 + signal.SIGPIPE


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' layout and appends each option's default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (action.option_strings and "%(default)" not in text and default is not None and default is not False
                and default is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


STUDY_HELP = ("study file (YAML): name, backbone, dataset, search space, proxy, objectives, trials, storage; "
              "relative paths in it resolve against its folder")
STORAGE_HELP = ("storage URL, overriding the study file's `storage:` (whose default is "
                "sqlite:///<study file's folder>/<name>.db); e.g. postgresql://user@host/db for many machines")


def _parser() -> argparse.ArgumentParser:
    from nas import __version__

    parser = argparse.ArgumentParser(
        prog="nas", description="Search where to put attention blocks (SE, ECA, CBAM, GE) in a CNN.",
        formatter_class=_HelpFormatter,
        epilog="typical session:\n  nas check studies/demo.yaml\n  nas search studies/demo.yaml\n"
               "  nas front studies/demo.yaml --plot front.png\n"
               "  nas export studies/demo.yaml --pick knee -o best.yaml\n"
               "  nas train best.yaml --dataset fashion-mnist --save best.pt\n\n"
               "`nas COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, example: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary, formatter_class=_HelpFormatter,
                              epilog=f"example:\n{example}")

    p = command("search", "create or resume a study and run it to its trial target",
                "  nas search studies/demo.yaml\n"
                "  nas search studies/demo.yaml --trials 80 --storage postgresql://nas@dbhost/nas_studies")
    p.add_argument("study", type=Path, help=STUDY_HELP)
    p.add_argument("--trials", type=int, help="target number of finished trials (default: the file's `trials`)")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N; auto = CUDA when present")
    p.add_argument("--timeout", type=float, help="start no new trial after this many seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per trial is still printed)")
    p.set_defaults(run=_search)

    p = command("front", "print (and plot) the study's Pareto front",
                "  nas front studies/demo.yaml --plot front.png\n  nas front studies/demo.yaml --search --json")
    p.add_argument("study", type=Path, help=STUDY_HELP)
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--plot", type=Path, help="also write a plot: FILE.png or FILE.html (its folder must exist)")
    p.add_argument("--json", action="store_true",
                   help="print the front as JSON (accuracy, accuracy_std, n_evals, mflops, params, knee, tie, ...) "
                        "instead of a table")
    _which_front(p)
    p.add_argument("--latency", type=Path, metavar="TABLE.json",
                   help="add each row's latency predicted by this table (nas latency-table) to a study without the "
                        "latency objective (default: the study file's latency.table, where it names one)")
    p.add_argument("--measure", action="store_true",
                   help="also time the front's rows directly against none and flag a prediction the measurement "
                        "disagrees with beyond noise (needs an idle machine)")
    p.set_defaults(run=_front)

    p = command("export", "write the chosen architecture as an ArchConfig YAML",
                "  nas export studies/demo.yaml --pick knee -o best.yaml\n"
                "  nas export studies/demo.yaml --pick accuracy --max-mflops 10 -o best.yaml")
    p.add_argument("study", type=Path, help=STUDY_HELP)
    p.add_argument("--pick", default="knee",
                   help="knee | accuracy | flops (cheapest) | trial:N (that trial, which must meet the filters)")
    p.add_argument("--max-mflops", type=float, help="only trials at or under this many MFLOPs")
    p.add_argument("--min-accuracy", type=float, help="only trials at or over this accuracy")
    _which_front(p)
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("-o", "--output", type=Path, required=True, help="output YAML file (its folder must exist)")
    p.add_argument("--latency", type=Path, metavar="TABLE.json",
                   help="report the pick's latency predicted by this table, for a study without the latency objective")
    p.set_defaults(run=_export)

    p = command("check", "validate a study file and show what would run (space, baselines' cost); writes nothing",
                "  nas check studies/demo.yaml")
    p.add_argument("study", type=Path, help=STUDY_HELP)
    p.add_argument("--storage", help=STORAGE_HELP)
    p.set_defaults(run=_check)

    p = command("latency", "time architectures interleaved with none under the study's latency conditions",
                "  nas latency studies/demo.yaml\n  nas latency studies/demo.yaml best.yaml --json")
    p.add_argument("study", type=Path, help=STUDY_HELP)
    p.add_argument("archs", type=Path, nargs="*", metavar="ARCH.yaml",
                   help="architecture files (nas export); default: the study's baselines")
    p.add_argument("--json", action="store_true", help="print JSON rows (arch_id, measured_ms, measured_ratio, "
                                                      "ratio_ci, predicted_ms, predicted_ratio, ...) instead")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.set_defaults(run=_latency)

    p = command("latency-table", "measure the study's latency table on this machine (resumable), or check or adapt "
                "one from another machine",
                "  nas latency-table studies/demo.yaml\n"
                "  nas latency-table studies/demo.yaml -o edge-box.latency.json   # then latency: {table: ...}\n"
                "  nas latency-table studies/demo.yaml --check edge-box.latency.json   # how far it holds here\n"
                "  nas latency-table studies/demo.yaml --adapt edge-box.latency.json -o here.latency.json")
    p.add_argument("study", type=Path, help=STUDY_HELP)
    p.add_argument("-o", "--output", type=Path,
                   help="table file (default: the study file's latency.table, else <name>.latency.json beside it)")
    carried = p.add_mutually_exclusive_group()
    carried.add_argument("--adapt", type=Path, metavar="TABLE.json",
                         help="refit a table measured elsewhere to this machine in seconds (none and one scale, "
                              "measured on --archs architectures here; validated on latency.check others) instead of "
                              "measuring every stage choice")
    carried.add_argument("--check", type=Path, metavar="TABLE.json",
                         help="measure --archs random architectures here and print how far the table's predictions "
                              "hold on this machine; writes nothing")
    p.add_argument("--archs", type=int, default=12, metavar="N",
                   help="architectures --adapt refits on, or --check measures")
    p.add_argument("--allow-runtime-change", action="store_true",
                   help="let --adapt/--check carry a table to another runtime (eager <-> onnxruntime), which may rank "
                        "the kinds differently")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.set_defaults(run=_latency_table)

    p = command("train", "train an architecture at full length; report validation and test accuracy",
                "  nas train best.yaml --dataset fashion-mnist --epochs 30 --save best.pt\n"
                "  nas train best.yaml --dataset cifar100 --in-chans 1 --resize-head --val-fraction 0.2")
    p.add_argument("arch", type=Path, help="ArchConfig YAML/JSON (for example from nas export)")
    p.add_argument("--dataset", required=True,
                   help="fashion-mnist, mnist, cifar10, cifar100, tiny-imagenet, imagefolder, synthetic")
    p.add_argument("--path", type=Path,
                   help="dataset folder: for imagefolder, class folders, or train/ + val/ where val/ is the TEST split")
    p.add_argument("--subset", type=int, help="class-balanced training subset size (default: all)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of the training images held out for validation")
    p.add_argument("--image-size", type=int, help="resize images to this size (default: as stored)")
    p.add_argument("--in-chans", type=int, choices=(1, 3),
                   help="convert the images to 1 (luminance) or 3 channels (default: as stored); the architecture's "
                        "in_chans must match")
    p.add_argument("--resize-head", action="store_true",
                   help="when the dataset's class count differs from the architecture's num_classes, train a new "
                        "classifier of the dataset's size instead of refusing")
    p.add_argument("--epochs", type=int, default=30, help="passes over the training split")
    p.add_argument("--batch-size", type=int, default=256, help="images per optimizer step")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the proxy's, 0.5 at batch 256)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split, initialisation, data order and augmentation")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--save", type=Path,
                   help="save the weights with their preprocessing: a torch checkpoint (README, 'Use the trained "
                        "weights')")
    p.add_argument("--onnx", type=Path,
                   help="also write the trained model as ONNX (batch 1, the dataset's image size, inputs normalised "
                        "as --save's preprocessing says), checked against eager PyTorch in ONNX Runtime first")
    p.set_defaults(run=_train)

    p = command("refine", "confirm the front now: retrain it standalone at the long fidelity over seeds "
                          "(nas search does it at the end)",
                "  nas refine studies/demo.yaml\n  nas refine studies/demo.yaml --top 8 --epochs 6 --seeds 3")
    p.add_argument("study", type=Path, help=STUDY_HELP)
    p.add_argument("--top", type=int, help="front and near-front architectures to retrain (default: confirm.top)")
    p.add_argument("--screen", type=int, help="first train this many candidates at one seed, and retrain the top of "
                                              "them (default: confirm.screen)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: confirm.epochs, else 3x the proxy's)")
    p.add_argument("--seeds", type=int, help="seeds per architecture (default: confirm.seeds)")
    p.add_argument("--max-seeds", type=int, help="seeds for architectures still tied at the top (default: "
                                                 "confirm.max_seeds, else 2x seeds)")
    p.add_argument("--fresh-seeds", type=int, help="then train the confirmed front at this many seeds "
                                                   "confirmation did not use, and show those (default: "
                                                   "confirm.fresh_seeds; 0: none)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.set_defaults(run=_refine)

    p = command("dashboard", "serve optuna-dashboard for the study on 127.0.0.1",
                "  nas dashboard studies/demo.yaml --port 8081")
    p.add_argument("study", type=Path, help=STUDY_HELP)
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--port", type=int, default=8080, help="TCP port on 127.0.0.1")
    p.set_defaults(run=_dashboard)

    p = command("schema", "print the JSON Schema of study files (for editors' YAML language server)",
                "  nas schema -o nas-study.schema.json\n"
                "  # then first line of a study file:  # yaml-language-server: $schema=nas-study.schema.json")
    p.add_argument("-o", "--output", type=Path, help="write it to this file instead of standard output")
    p.set_defaults(run=_schema)
    return parser


def _schema(args: argparse.Namespace) -> int:
    from nas.validation import json_schema

    text = json.dumps(json_schema(), indent=1) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if not args.output.parent.is_dir():
        raise ConfigError(f"-o {args.output}: the folder {args.output.parent} does not exist")
    args.output.write_text(text)
    print(f"JSON Schema of study files written to {args.output}")
    return 0


def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from nas.files import read_document

    read_document(args.study, "the study file")  # a missing or unparsable file is refused before torch loads
    from nas.studyfile import load_study_config

    return load_study_config(args.study, args.storage)


def _search(args: argparse.Namespace) -> int:
    from nas.front import front_of, near_chance
    from nas.storage import masked
    from nas.study.loop import search

    config = _config(args)
    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials = {args.trials} is invalid; allowed: an integer >= 1")
    from nas.backbones import get_backbone

    if get_backbone(config.backbone).has_own(config.backbone_args):
        print(f"backbone {config.backbone} brings attention of its own: {config.own_attention()}", flush=True)
    study = search(config, device=args.device, trials=args.trials, timeout=args.timeout,
                   progress=False if args.no_progress else None)
    warning = near_chance(front_of(study).rows)
    done = f"done; warning: {warning}." if warning else "done."
    print(f"{done} Inspect: nas front {args.study}   or   optuna-dashboard {masked(config.storage)}")
    return 0


def _study(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The study config and the study whose results `front`, `export` and `refine` read: of a
    multi-fidelity study, its top rung (and the config at the top rung's proxy)."""
    from nas.study.creation import open_study
    from nas.study.rungs import top_rung

    config = _config(args)
    if config.fidelity is not None:
        return top_rung(config)
    study, _ = open_study(config, create=False)
    return config, study


def _existing(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The study file's StudyRef and the study whose results `front`, `export` and `dashboard`
    read (of a multi-fidelity study: its top rung), without building the backbone or the space,
    so without importing torch (see nas.studyref)."""
    from nas.files import read_document

    read_document(args.study, "the study file")
    from nas.studyref import open_existing, read_study_ref

    ref = read_study_ref(args.study, args.storage)
    study = open_existing(ref)
    if ref.fidelity is not None:
        study = open_existing(dataclasses.replace(ref, name=ref.fidelity.study_name(ref.name, ref.fidelity.top)))
    return ref, study


def _at_rung(config) -> str:  # type: ignore[no-untyped-def]
    """' at rung 2 (9 epochs x 2 seeds)' for a multi-fidelity study, else ''."""
    return f" at {config.fidelity.describe(config.fidelity.top)}" if config.fidelity is not None else ""


def _which_front(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--confirmed", "--refined", dest="want", action="store_const", const="confirmed",
                       default="auto", help="the confirmed front; refused when the study was never confirmed "
                                            "(default: the confirmed front once confirmation has finished)")
    which.add_argument("--search", dest="want", action="store_const", const="search",
                       help="the search's own front: proxy results or one-shot scores, not confirmed")


def _results(config, study, want: str):  # type: ignore[no-untyped-def]
    """Which front to read (`nas.confirmed.read_front`): of a multi-fidelity study, its top rung's."""
    from nas.confirmed import read_front

    return read_front(config.storage, config.name, study, want, _at_rung(config))


def _front(args: argparse.Namespace) -> int:
    from nas.front import check_plot_path, format_table, near_chance, plot_front, to_json

    if args.plot is not None:
        check_plot_path(args.plot)
    config, study = _existing(args)
    reading = _results(config, study, args.want)
    front = _with_table(reading.front, config, args.latency)
    measured = _measure_front(args, front) if args.measure else None
    if args.json:
        print(json.dumps(to_json(front), indent=1))
    elif not front.rows:
        print(f"{front.name} has no finished trial yet")
    else:
        print(f"{reading.heading} of study {config.name!r} ({len(front.rows)} architectures; {FLOPS_NOTE}):")
        print(format_table(front))
        from nas.attrs import StudyAttr

        own = study.user_attrs.get(StudyAttr.OWN_ATTENTION, "none")
        if not own.startswith("none"):
            print(f"the backbone's own attention: {own}")
    if measured:
        print("\n".join(measured))
    if reading.note:
        print(f"note: {reading.note}", file=sys.stderr if args.json else sys.stdout)
    warning = near_chance(front.rows)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if args.plot is not None:
        notes = sys.stderr if args.json else sys.stdout
        if front.architectures:
            plot_front(front, args.plot)
            print(f"plot written to {args.plot}", file=notes)
        else:
            print(f"no plot written: {front.name} has no finished trial", file=notes)
    return 0


def _with_table(front, ref, given: Path | None):  # type: ignore[no-untyped-def]
    """The front with latencies from `--latency` (or the study file's `latency.table`) where its
    rows have none of their own."""
    from nas.front import with_latency
    from nas.latency.table import load_table

    if given is None and (ref.latency_table is None or any(r.latency is not None for r in front.rows)):
        return front
    path = given if given is not None else ref.latency_table
    table = load_table(path, "--latency " + str(path) if given is not None else f"{ref.path}: latency.table")
    return with_latency(front, table)


def _measure_front(args: argparse.Namespace, front) -> list[str]:  # type: ignore[no-untyped-def]
    """`nas front --measure`: the front's rows timed directly, against their predictions."""
    from nas.arch import ArchConfig
    from nas.latency.builder import check_conditions, measure_architectures

    config = _config(args)
    data = config.load_data()
    target = config.latency_target(data)
    check_conditions(target.conditions)
    archs = [ArchConfig.from_dict(r.arch) for r in front.rows]
    results = measure_architectures(target, archs, config.latency.target, config.latency.max_seconds)
    lines = [f"measured now ({target.conditions.describe()}; 95% intervals; ratio to none timed interleaved):"]
    for r, arch in zip(front.rows, archs, strict=True):
        m = results[arch.arch_id]
        line = f"  #{r.number:<5} measured {m.ms:.3f} ± {m.ms_ci:.3f} ms, x{m.ratio:.3f} ± {m.ratio_ci:.3f}"
        if r.latency is not None:
            gap = m.ratio - r.latency.ratio
            agree = abs(gap) <= (m.ratio_ci ** 2 + r.latency.ratio_ci ** 2) ** 0.5
            line += (f"; predicted x{r.latency.ratio:.3f} ± {r.latency.ratio_ci:.3f}: "
                     + ("agrees" if agree else f"DISAGREES beyond noise ({gap:+.3f})"))
        if not m.converged:
            line += f"; not converged to ±{100 * config.latency.target:g} % (machine busy?)"
        lines.append(line)
    return lines


def _latency(args: argparse.Namespace) -> int:
    """`nas latency`: each architecture timed against none; with the study's table, its prediction beside."""
    from nas.arch import load_arch
    from nas.latency.builder import check_conditions, measure_architectures
    from nas.latency.conditions import describe_signature, device_signature
    from nas.study.latency import existing_table

    config = _config(args)
    for path in args.archs:
        if not path.is_file():
            raise ConfigError(f"{path}: no such architecture file")
    check_conditions(config.latency_conditions)
    data = config.load_data()
    target = config.latency_target(data)
    if args.archs:
        archs = []
        template = target.template()
        for path in args.archs:
            arch = load_arch(path)
            for field in ("backbone", "num_classes", "in_chans"):
                if getattr(arch, field) != getattr(template, field):
                    raise ConfigError(f"{path}: {field} = {getattr(arch, field)!r}, but the study's network has "
                                      f"{getattr(template, field)!r}; allowed: an architecture of this study")
            if dict(arch.backbone_args) != dict(template.backbone_args):
                raise ConfigError(f"{path}: backbone_args = {dict(arch.backbone_args)}, but the study's are "
                                  f"{dict(template.backbone_args)}; allowed: an architecture of this study")
            archs.append((str(path), arch))
    else:
        archs = [(label, config.baseline_arch(spec, data.num_classes, data.in_chans))
                 for label, spec in config.baselines]
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    table = existing_table(config, data, log=log)
    results = measure_architectures(target, [a for _, a in archs], config.latency.target, config.latency.max_seconds)
    rows = []
    for label, arch in archs:
        m = results[arch.arch_id]
        item = {"label": label, "arch_id": arch.arch_id, "measured_ms": m.ms, "measured_ms_ci": m.ms_ci,
                "measured_ratio": m.ratio, "ratio_ci": m.ratio_ci, "none_ms": m.reference_ms,
                "converged": m.converged, "rounds": m.rounds}
        if table is not None:
            p = table.predict(arch.arch_id)
            item.update(predicted_ms=p.ms, predicted_ms_ci=p.ms_ci, predicted_ratio=p.ratio,
                        predicted_ratio_ci=p.ratio_ci)
        rows.append(item)
    unconverged = [r["label"] for r in rows if not r["converged"]]
    if args.json:
        print(json.dumps({"conditions": config.latency_conditions.to_dict(),
                          "signature": device_signature(config.latency_conditions), "rows": rows}, indent=1))
    else:
        print(f"latency of study {config.name!r}'s {'architectures' if args.archs else 'baselines'} at "
              f"{data.image_size[0]}x{data.image_size[1]}: {config.latency_conditions.describe()} on "
              f"{describe_signature(device_signature(config.latency_conditions))}")
        print("  each timed interleaved with none until the ratio's 95% interval is within "
              f"±{100 * config.latency.target:g} % (or {config.latency.max_seconds:g} s per group)")
        width = max(len(r["label"]) for r in rows)
        for r in rows:
            line = (f"  {r['label']:<{width}}  {r['measured_ms']:.3f} ± {r['measured_ms_ci']:.3f} ms  "
                    f"x{r['measured_ratio']:.3f} ± {r['ratio_ci']:.3f} vs none")
            if "predicted_ms" in r:
                line += f"   table predicts {r['predicted_ms']:.3f} ms, x{r['predicted_ratio']:.3f}"
            print(line + ("" if r["converged"] else "   (not converged)"))
    if unconverged:
        print(f"warning: {', '.join(unconverged)} did not reach ±{100 * config.latency.target:g} % in "
              f"{config.latency.max_seconds:g} s: this machine is too loaded for a latency to be trusted; run it "
              "again on an idle machine", file=sys.stderr)
    return 0


def _latency_table(args: argparse.Namespace) -> int:
    from nas.study.latency import adapt_study_table, check_study_table, new_table

    config = _config(args)
    carried = args.adapt or args.check
    if carried is not None and args.archs < 2:
        raise ConfigError(f"--archs = {args.archs} is invalid; allowed: an integer >= 2")
    if args.check is not None and args.output is not None:
        raise ConfigError(f"-o {args.output}: --check writes nothing; allowed: -o with --adapt or a build")
    if carried is None and args.allow_runtime_change:
        raise ConfigError("--allow-runtime-change is for --adapt or --check; allowed: one of them with it")
    if args.output is not None:
        if not args.output.parent.is_dir():
            raise ConfigError(f"-o {args.output}: the folder {args.output.parent} does not exist")
        config = dataclasses.replace(config, latency_table=args.output)
    if args.check is not None:
        check_study_table(config, config.load_data(), args.check, args.archs, args.allow_runtime_change)
        return 0
    if args.adapt is not None:
        adapt_study_table(config, config.load_data(), args.adapt, config.latency_table_path, args.archs,
                          args.allow_runtime_change)
    else:
        new_table(config, config.load_data())
    print(f"latency table written to {config.latency_table_path}")
    return 0


def _refine(args: argparse.Namespace) -> int:
    from nas.confirmed import read_front
    from nas.front import format_table
    from nas.refine import run_refine
    from nas.train import resolve_device

    for name in ("top", "screen", "seeds", "epochs", "max_seeds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} = {value} is invalid; allowed: an integer >= 1")
    if args.fresh_seeds is not None and not 0 <= args.fresh_seeds <= 100:
        raise ConfigError(f"--fresh-seeds = {args.fresh_seeds} is invalid; allowed: an integer from 0 to 100")
    resolve_device(args.device)
    config, study = _study(args)
    data = config.load_data()
    run_refine(config, study, data, top=args.top, screen=args.screen, epochs=args.epochs, seeds=args.seeds,
               max_seeds=args.max_seeds, fresh_seeds=args.fresh_seeds, device=args.device)
    reading = read_front(config.storage, config.name, study, "confirmed", _at_rung(config))
    print(f"{reading.heading} of study {config.name!r} ({len(reading.front.rows)} architectures; {FLOPS_NOTE}):")
    print(format_table(reading.front))
    if reading.note:
        print(f"note: {reading.note}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from nas.export import export_document, latency_line, pick, versus_line, versus_none, write_export

    if not args.output.parent.is_dir():
        raise ConfigError(f"-o {args.output}: the folder {args.output.parent} does not exist")
    config, study = _existing(args)
    reading = _results(config, study, args.want)
    front = _with_table(reading.front, config, args.latency)
    chosen = pick(front, args.pick, args.max_mflops, args.min_accuracy)
    comparison = versus_none(front, chosen, refined=reading.confirmed)
    write_export(export_document(study, chosen, args.pick, config.storage, comparison, front.latency_conditions,
                                 front_read=reading.heading), args.output)
    print(f"exported trial #{chosen.number} of the {reading.heading} ({args.pick}): accuracy "
          f"{chosen.accuracy_text()}, {chosen.mflops:.2f} MFLOPs, {chosen.params:,} params\n  {chosen.arch_id}\n"
          f"  -> {args.output}")
    if reading.note:
        print(f"note: {reading.note}")
    print(versus_line(comparison))
    latency = latency_line(front, chosen)
    if latency:
        print(latency)
    return 0


def _evaluation_line(config, data) -> str | None:  # type: ignore[no-untyped-def]
    """For a study scored by a supernet: its size, memory and the training it costs once (None for
    the default evaluator, the proxy, which the `proxy` line already describes)."""
    if config.evaluation.kind == "proxy":
        return None
    from nas.study.oneshot import build_supernet, describe_supernet

    net = build_supernet(config, data)  # refuses a space over evaluation.max_mb
    e = config.evaluation
    state = "exists" if config.supernet_path.exists() else "trained by the first nas search"
    return (f"  evaluation  supernet: {describe_supernet(net)}; trains once for {e.epochs} epochs (as much as "
            f"{e.epochs / config.proxy.epochs:g} proxy runs), then each trial is scored with inherited weights "
            f"after batch-norm recalibration on {e.recal} images; {config.supernet_path} ({state})")


def _confirm_line(config) -> str:  # type: ignore[no-untyped-def]
    """What confirmation will retrain after the search, and what it costs in proxy runs."""
    c = config.confirm
    proxy_epochs = (config.fidelity.epochs[-1] if config.fidelity is not None else config.proxy.epochs)
    epochs = c.epochs or 3 * proxy_epochs
    seeds = f"{c.seeds}-{c.most_seeds}" if c.most_seeds > c.seeds else f"{c.seeds}"
    when = "after the search" if c.after_search else "with `nas refine` only (confirm.after_search: false)"
    more = max(0, (c.screen or 0) - c.top)  # candidates screened out after one run each
    screen = f", the best of {c.screen} by one run each" if more else ""
    runs = c.top * c.seeds + more
    fresh = (f", then the confirmed front at {c.fresh_seeds} fresh seeds ({c.fresh_seeds} more runs per member)"
             if c.fresh_seeds else "")
    return (f"  confirm     up to {c.top} front and near-front architectures{screen} at {epochs} epochs x {seeds} "
            f"seeds{fresh} {when}: at least {runs * epochs / config.proxy.epochs:g} proxy runs' training")


def _check(args: argparse.Namespace) -> int:
    """Everything is computed (the baselines built and counted) before anything is printed, so a
    refusal is the only line."""
    from nas.storage import masked

    config = _config(args)
    data = config.load_data()
    config.check_weights(data)  # a file that does not fit the network is refused here, like at search
    template = config.template(data.num_classes, data.in_chans)
    floor = _cost(config, "backbone", template, data)
    baselines = []
    for label, spec in config.baselines:
        arch = config.baseline_arch(spec, data.num_classes, data.in_chans)
        baselines.append((label, arch, _cost(config, f"baselines: {label}", arch, data)))
    warnings = _budget_warnings(config, floor, baselines)
    latency_lines = _latency_lines(config, data, warnings)
    evaluation = _evaluation_line(config, data)
    n = len(template.stages)
    print(f"study {config.name!r} ({config.path})")
    print(f"  storage     {masked(config.storage)}")
    print(f"  backbone    {config.backbone} {dict(config.backbone_args)}: {n} stages, searching stages "
          f"{', '.join(map(str, config.space.searched_stages(n)))}; {floor.mflops:.3f} MFLOPs with no attention")
    print(f"  own attention {config.own_attention()}")
    if config.weights is not None:
        w = config.weights
        print(f"  weights     {w.file} (sha256 {w.sha256[:12]}…): loaded and checked; blocks start "
              f"{'as the identity' if w.identity else 'at their paper initialisation'}; pretrained parameters at "
              f"{config.proxy.backbone_lr_scale:g} x lr, frozen for {config.proxy.freeze_epochs} epoch(s)")
    print(f"  dataset     {data!r}")
    choices = config.stage_choices()
    per_stage = str(choices[0]) if len(set(choices)) == 1 else "/".join(map(str, choices))
    print(f"  space       {per_stage} choices per searched stage -> "
          f"{config.space_size():,} distinct architectures; per kind (a setting the space leaves out takes "
          "the BlockSpec default, marked where it differs from the paper's):")
    for line in _space_lines(config.space):
        print(f"    {line}")
    print(f"  proxy       {config.proxy.to_dict()}")
    if evaluation is not None:
        print(evaluation)
    for line in _fidelity_lines(config, data):
        print(line)
    print(f"  objectives  {', '.join(config.objectives)}; sampler {config.sampler}; target {config.trials} trials"
          f"{' finished at rung 0' if config.fidelity is not None else ''}")
    print(_confirm_line(config))
    limits = {k: v for k, v in (("max_mflops", config.max_mflops), ("max_params", config.max_params)) if v}
    print(f"  constraints {limits or 'none'}")
    for line in latency_lines:
        print(line)
    print(f"  baselines ({FLOPS_NOTE}, at {data.image_size[0]}x{data.image_size[1]}):")
    width = max([6, *(len(label) for label, _, _ in baselines)])
    for label, arch, cost in baselines:
        in_space = "in space" if config.space.params_for(arch) is not None else "outside the space"
        print(f"    {label:<{width}} {cost.mflops:9.3f} MFLOPs {cost.params:>10,} params  {arch.arch_id}  ({in_space})")
    for warning in warnings:
        print(f"warning: {warning}")
    print("ok: nothing was written")
    return 0


def _latency_lines(config, data, warnings: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """The latency conditions, this machine's signature and the table the study would use."""
    from nas.latency.builder import check_conditions
    from nas.latency.conditions import describe_signature, device_signature
    from nas.objectives import LATENCY
    from nas.study.latency import existing_table, table_summary

    conditions = config.latency_conditions
    lines = [f"  latency     {conditions.describe()}; this machine: {describe_signature(device_signature(conditions))}"]
    table = existing_table(config, data, log=lambda line: warnings.append(line.removeprefix("warning: ")))
    if table is not None:
        lines += [f"    {line.strip()}" for line in table_summary(table).splitlines()]
        lines.append(f"    table file {config.latency_table_path}")
    elif LATENCY.name in config.objectives:
        check_conditions(conditions)
        choices = len(config.latency_target(data).choices())
        lines.append(f"    no table yet: nas search measures {choices} stage choices + {config.latency.check} "
                     f"random architectures into {config.latency_table_path} before any training "
                     "(or run nas latency-table)")
    return lines


def _fidelity_lines(config, data) -> list[str]:  # type: ignore[no-untyped-def]
    """A multi-fidelity study's rungs and the training they are projected to cost, against one
    fidelity at the top rung's epochs; nothing for a single-fidelity study."""
    from nas.train import images_per_epoch

    fidelity = config.fidelity
    if fidelity is None:
        return []
    per_epoch = images_per_epoch(len(data.train), config.proxy.batch_size)
    counts = fidelity.projected_candidates(config.trials, len(config.baselines))
    images = fidelity.projected_images(config.trials, len(config.baselines), per_epoch)
    exact = fidelity.promotion == "quota"  # asha passes on more than keep: nas.study.promotion
    learns = fidelity.learns_from(config.sampler)
    lines = [f"  fidelity    {fidelity.top + 1} rungs; {fidelity.rule()}; {learns}; Pareto rank is non-dominated "
             f"sorting, then crowding distance; projected for {config.trials} trials at rung 0, {per_epoch:,} training "
             f"images per epoch ({'exact' if exact else 'exact keep: asha trains more'}):"]
    width = max(len(fidelity.describe(k)) for k in range(fidelity.top + 1))
    for k in range(fidelity.top + 1):
        lines.append(f"    {fidelity.describe(k):<{width}}  {counts[k]:>5} candidates  {images[k]:>13,} images  "
                     f"study {fidelity.study_name(config.name, k)!r}")
    total, top_seeds = sum(images), fidelity.seeds[-1]
    single = [(s, config.trials * fidelity.epochs[-1] * s * per_epoch) for s in sorted({1, top_seeds})]
    shown = ", ".join(f"{n:,} at {s} seed{'s' if s > 1 else ''} ({total / n:.2f}x that)" for s, n in single)
    lines.append(f"    total {'' if exact else 'at least '}{total:,} training images; one fidelity, "
                 f"{config.trials} trials at {fidelity.epochs[-1]} epochs: {shown}")
    return lines


def _cost(config, what: str, arch, data):  # type: ignore[no-untyped-def]
    """Build and count `arch` at the dataset's image size; a model that cannot take it is a ConfigError."""
    from nas.cost import arch_cost

    try:
        return arch_cost(arch, data.image_size)
    except NasError:
        raise
    except Exception as error:  # torch/timm say why in their own words; one line of it is enough
        h, w = data.image_size
        first = (str(error).strip().splitlines() or ["(no message)"])[0][:300]
        raise ConfigError(
            f"{config.path}: {what}: {config.backbone} cannot take {data.in_chans}-channel {h}x{w} images "
            f"({type(error).__name__}: {first}); allowed: a backbone made for this input size, or "
            "dataset.image_size set to the size it expects"
        ) from None


def _budget_warnings(config, floor, baselines) -> list[str]:  # type: ignore[no-untyped-def]
    """Refuse a budget nothing in the space meets; warn about one that every baseline exceeds."""
    warnings = []
    for key, limit, value, unit in (("max_mflops", config.max_mflops, floor.mflops, "MFLOPs"),
                                    ("max_params", config.max_params, floor.params, "params")):
        if limit is None:
            continue
        if value > limit:
            raise ConfigError(
                f"{config.path}: constraints.{key} = {limit} is below the cheapest architecture the space can "
                f"build ({config.backbone} with no attention: {value:,.3f} {unit}); allowed: a number >= {value:,.3f}"
            )
        costs = {label: cost.mflops if key == "max_mflops" else cost.params for label, _, cost in baselines}
        if costs and min(costs.values()) > limit:
            cheapest = min(costs, key=costs.__getitem__)
            warnings.append(f"constraints.{key} = {limit} is below every baseline (cheapest: {cheapest}, "
                            f"{costs[cheapest]:,.3f} {unit}): they will all be recorded infeasible, untrained")
    return warnings


def _space_lines(space) -> list[str]:  # type: ignore[no-untyped-def]
    """One line per kind: each setting's choices, and the default a setting the space leaves out takes."""
    from nas.blocks import BlockSpec

    def show(value: object) -> str:
        return "null" if value is None else str(value)

    lines = []
    for kind in space.kinds:
        if kind in ("none", "own"):
            lines.append(kind + (" (the backbone's own attention, kept where it has some)" if kind == "own" else ""))
            continue
        default, paper = BlockSpec(kind).to_dict(), BlockSpec.paper_default(kind).to_dict()
        parts = []
        for name in dict.fromkeys([*default, *paper]):
            if name in ("kind", "placement"):
                continue
            choices = space.settings.get(kind, {}).get(name)
            if choices is not None:
                parts.append(f"{name} [{', '.join(map(show, choices))}]")
            elif name in default:
                same = paper.get(name, default[name]) == default[name]
                note = "default" if same else f"default; the paper's is {show(paper[name])}"
                parts.append(f"{name} {show(default[name])} ({note})")
        lines.append(f"{kind:<5} " + "  ".join(parts))
    lines.append(f"placement [{', '.join(space.placements)}]")
    if space.choose_stages:
        lines.append("choose_stages: each stage is drawn on or off (even odds) before its kind")
    return lines


def _train(args: argparse.Namespace) -> int:
    import time

    import torch

    from nas.arch import load_arch
    from nas.build import build_model
    from nas.data import load_dataset
    from nas.export import trained_checkpoint
    from nas.files import read_document
    from nas.train import ProxyConfig, evaluate, resolve_device, train_proxy

    read_document(args.arch, "the architecture file")  # refused before torch loads, when it cannot be read
    for flag, path in (("--save", args.save), ("--onnx", args.onnx)):
        if path is not None and not path.parent.is_dir():
            raise ConfigError(f"{flag} {path}: the folder {path.parent} does not exist")
    arch = load_arch(args.arch)
    device = resolve_device(args.device)
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed}
    if args.lr is not None:
        settings["lr"] = args.lr
    config = ProxyConfig.from_dict(settings)
    data = load_dataset(args.dataset, path=args.path, subset=args.subset, val_fraction=args.val_fraction,
                        image_size=args.image_size, seed=args.seed, in_chans=args.in_chans)
    if data.in_chans != arch.in_chans:
        raise ConfigError(
            f"{args.arch}: in_chans = {arch.in_chans} but {args.dataset} images have {data.in_chans} channel(s); "
            f"allowed: --in-chans {arch.in_chans} (convert the images), or an architecture with in_chans: "
            f"{data.in_chans}"
        )
    if data.num_classes != arch.num_classes:
        if not args.resize_head:
            raise ConfigError(
                f"{args.arch}: num_classes = {arch.num_classes} but {args.dataset} has {data.num_classes} classes; "
                f"allowed: --resize-head (train a {data.num_classes}-way classifier instead), or an architecture "
                f"with num_classes: {data.num_classes}"
            )
        print(f"note: --resize-head: the classifier has {data.num_classes} outputs, not the architecture "
              f"file's {arch.num_classes}")
        arch = dataclasses.replace(arch, num_classes=data.num_classes)
    print(f"training {arch.arch_id} on {data!r} for {args.epochs} epochs on {device}", flush=True)
    start = time.perf_counter()

    def progress(epoch: int, accuracy: float) -> None:
        print(f"epoch {epoch}/{args.epochs}: validation accuracy {accuracy:.4f}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    model = build_model(arch)
    result = train_proxy(model, data, config, device, on_epoch=progress)
    print(f"validation accuracy {result.accuracy:.4f} (loss {result.loss:.4f}) on {len(data.val)} images after "
          f"{result.epochs_done:g} epochs, {result.seconds:.1f} s, {result.images_per_second:.0f} images/s")
    metrics: dict[str, float | None] = {"val_accuracy": result.accuracy, "val_loss": result.loss,
                                        "test_accuracy": None, "test_loss": None}
    if data.test is not None:
        test_acc, test_loss = evaluate(model, data.test, data, device)
        metrics.update(test_accuracy=test_acc, test_loss=test_loss)
        held_out = f" ({args.path}/val)" if args.dataset == "imagefolder" else ""
        print(f"test accuracy {test_acc:.4f} (loss {test_loss:.4f}) on {len(data.test)} images{held_out}")
    else:
        print("this dataset has no test split; only validation accuracy is reported")
    onnx = None
    if args.onnx is not None:  # exported and checked before any file is written
        from nas.latency.runtime import checked_onnx

        x = torch.randn(1, data.in_chans, *data.image_size, generator=torch.Generator().manual_seed(0))
        onnx = checked_onnx(model, x, f"--onnx {args.onnx}", "leave out --onnx (--save keeps the PyTorch weights)")
    if args.save is not None:
        torch.save(trained_checkpoint(arch, model, data, metrics), args.save)
        print(f"weights and preprocessing saved to {args.save} (README, 'Use the trained weights')")
    if onnx is not None:
        from nas.files import atomic_write

        with atomic_write(args.onnx) as handle:
            handle.write(onnx[0])
        print(f"ONNX model saved to {args.onnx} (input 'input' 1x{data.in_chans}x{data.image_size[0]}x"
              f"{data.image_size[1]}, normalised as the checkpoint's preprocessing says; output 'logits'; ONNX Runtime "
              f"matches eager PyTorch within {onnx[1]:.1e})")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    from nas.storage import masked

    config, _ = _existing(args)  # refuse a missing study before serving
    print(f"optuna-dashboard for study {config.name!r} ({masked(config.storage)})")
    print(f"open http://127.0.0.1:{args.port}/dashboard  (Ctrl-C to stop)", flush=True)
    optuna_dashboard.run_server(config.storage, host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
