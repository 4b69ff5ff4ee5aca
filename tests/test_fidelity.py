"""Multi-fidelity search (MO-ASHA): the fidelity section, promotion by Pareto rank, rung studies,
two workers on one SQLite file, a worker killed mid-promotion, and front/export at the top rung.

Training is a stub (its accuracy a hash of the architecture, plus a little per epoch and seed)
wherever training is not the point, so each test runs in seconds plus the workers' start-up. The
workers are processes of their own; `nas front/export/check` and the refusals run through
`nas.cli.main` in this process (`nas_in_process`), sparing a torch import per command."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import ROOT, nas_in_process, wait_for, write_study
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

import nas as nas_api
from nas.data import load_dataset
from nas.errors import ConfigError, StudyError
from nas.fidelity import Fidelity, fidelity_mismatch
from nas.study import asha
from nas.study.counts import count_finished
from nas.study.promotion import candidates, claim_promotion, crowding_distances, next_promotion, qualifying
from nas.study.rungs import open_rungs
from nas.study.sampler import HighestRungModel
from nas.studyfile import load_study_config

FIDELITY = {"epochs": [1, 2, 4], "keep": 0.34, "seeds": [1, 1, 2]}


def accuracy(arch_id: str, proxy) -> float:
    """The stub's accuracy: a hash of the architecture, plus a little per epoch and per seed."""
    import hashlib

    spread = (int(hashlib.sha1(arch_id.encode()).hexdigest(), 16) % 1000) / 1000
    return 0.3 + 0.5 * spread + 0.01 * proxy.epochs + 0.001 * proxy.seed


# a worker process: `nas.search` with the stub trainer, which appends "arch_id epochs seed pid" to a
# log per finished run, and holds a run of seed 1 above rung 0 while the file named third exists
WORKER = "import os, sys, time\nfrom pathlib import Path\nimport nas\n" + inspect.getsource(accuracy) + """
study, log = sys.argv[1], Path(sys.argv[2])
hold = Path(sys.argv[3]) if len(sys.argv) > 3 else None

def trainer(arch, data, proxy, device):
    while hold is not None and hold.exists() and proxy.epochs > 1 and proxy.seed == 1:
        time.sleep(0.05)
    time.sleep(0.05)
    with log.open("a") as out:
        out.write(f"{arch.arch_id} {proxy.epochs} {proxy.seed} {os.getpid()}\\n")
    return nas.ProxyResult(accuracy=accuracy(arch.arch_id, proxy), loss=1.0, train_loss=1.0, seconds=0.05,
                           train_seconds=0.05, images_per_second=1.0, epochs_done=proxy.epochs,
                           stopped_early=False, device="cpu")

nas.search(study, trainer=trainer, device="cpu", progress=False)
"""


def stub_trainer(arch, data, proxy, device):
    """The workers' trainer, in this process (no log)."""
    return nas_api.ProxyResult(accuracy=accuracy(arch.arch_id, proxy), loss=1.0, train_loss=1.0, seconds=0.01,
                               train_seconds=0.01, images_per_second=1.0, epochs_done=proxy.epochs,
                               stopped_early=False, device="cpu")


def worker(study_path: Path, log: Path, hold: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", WORKER, str(study_path), str(log), *([str(hold)] if hold else [])]
    return subprocess.Popen(args, cwd=study_path.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def rung_studies(study_path: Path, rungs: int, name: str = "tiny") -> list[optuna.Study]:
    storage = f"sqlite:///{study_path.parent / name}.db"
    return [optuna.load_study(study_name=name if k == 0 else f"{name}.rung{k}", storage=storage)
            for k in range(rungs)]


def assert_promotions_sound(studies: list[optuna.Study], fidelity: Fidelity) -> None:
    """Each rung k >= 1 holds each architecture at most once (retries of a killed attempt aside),
    promoted from a finished trial of the same architecture on the rung below; every candidate
    that qualifies at the end was promoted; no trial is left waiting or running."""
    for k, study in enumerate(studies):
        states = {t.state for t in study.trials}
        assert TrialState.RUNNING not in states and TrialState.WAITING not in states
        if k == 0:
            continue
        below = {t.number: t for t in studies[k - 1].get_trials(states=(TrialState.COMPLETE,))}
        complete = study.get_trials(states=(TrialState.COMPLETE,))
        arch_ids = [t.user_attrs["arch_id"] for t in complete]
        assert len(arch_ids) == len(set(arch_ids)), f"rung {k} trained an architecture twice"
        first_attempts = [t for t in study.trials if "failed_trial" not in t.system_attrs]
        assert len({t.user_attrs["arch_id"] for t in first_attempts}) == len(first_attempts), "promoted twice"
        for trial in complete:
            source = below[trial.user_attrs["promoted_from"]]
            assert source.user_attrs["arch_id"] == trial.user_attrs["arch_id"]
            assert trial.params == source.params
            assert trial.user_attrs["epochs"] == fidelity.epochs[k] and trial.user_attrs["rung"] == k
        below_candidates = candidates(studies[k - 1])
        if fidelity.promotion == "quota":  # exactly keep of the searched candidates below, the best first
            searched_below = [t for t in below_candidates if "baseline" not in t.user_attrs]
            searched_here = [t for t in complete if "baseline" not in t.user_attrs]
            assert len(searched_here) == fidelity.quota(len(searched_below))
        else:  # every candidate that qualifies at the end was promoted (and maybe more)
            earned = qualifying(below_candidates, studies[k - 1].directions, fidelity)
            assert {t.user_attrs["arch_id"] for t in earned} <= set(arch_ids)


# --- the study file's fidelity section -------------------------------------------------------------

@pytest.mark.parametrize(("fidelity", "message"), [
    ({"epochs": [1], "keep": 0.3}, "fidelity.epochs = [1] is invalid; allowed: a list of 2 or more strictly"),
    ({"epochs": [3, 3], "keep": 0.3}, "fidelity.epochs = [3, 3] is invalid; allowed: strictly increasing"),
    ({"epochs": [1, 0], "keep": 0.3}, "fidelity.epochs[1] = 0 is invalid; allowed: a list of 2 or more"),
    ({"epochs": [1, 3], "keep": 1}, "fidelity.keep = 1 is invalid; allowed: a fraction strictly between 0 and 1"),
    ({"epochs": [1, 3], "keep": 0}, "fidelity.keep = 0 is invalid; allowed: a fraction strictly between 0 and 1"),
    ({"epochs": [1, 3]}, "fidelity.keep is missing; required: epochs, keep"),
    ({"epochs": [1, 3], "keep": 0.5, "seeds": [1]}, "fidelity.seeds = [1] is invalid; allowed: one count per rung"),
    ({"epochs": [1, 3], "keep": 0.5, "seeds": [1, 0]}, "fidelity.seeds[1] = 0 is invalid; allowed: a list of"),
    ({"epochs": [1, 3], "keep": 0.5, "rungs": 2}, "fidelity.rungs is not a fidelity setting; allowed: epochs, keep"),
    ("fast", "fidelity = 'fast' is invalid; allowed: a mapping like {epochs: [1, 3, 9]"),
    ({"epochs": [1, 3], "keep": 0.5, "promotion": "sha"}, "fidelity.promotion = 'sha' is invalid; allowed: asha ("),
    ({"epochs": [1, 3], "keep": 0.5, "model": "top"}, "fidelity.model = 'top' is invalid; allowed: rung0 (the"),
])
def test_a_bad_fidelity_section_is_one_line_naming_the_file_and_field(tmp_path, fidelity, message):
    study = write_study(tmp_path, fidelity=fidelity)
    with pytest.raises(ConfigError) as error:
        load_study_config(study)
    assert str(error.value).startswith(f"{study}: {message}"), str(error.value)
    assert "\n" not in str(error.value)


def test_the_fidelity_section_refused_by_the_cli_exits_2_and_writes_nothing(tmp_path):
    for i, (fidelity, proxy) in enumerate([({"epochs": [2, 1], "keep": 0.5}, None),
                                           ({"epochs": [1, 3], "keep": 0.5}, {"epochs": 2, "batch_size": 50})]):
        study = write_study(tmp_path, name=f"bad{i}", fidelity=fidelity, **({"proxy": proxy} if proxy else {}))
        result = nas_in_process("search", study.name, cwd=tmp_path)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith(f"nas search: error: {study.name}: ")
        assert ("fidelity.epochs = [2, 1] is invalid" if i == 0 else
                "proxy.epochs = 2 differs from fidelity.epochs[0] = 1") in result.stderr
    assert not list(tmp_path.glob("*.db*"))


def test_a_valid_section_sets_rung_zeros_proxy_and_defaults_one_seed_per_rung(tmp_path):
    config = load_study_config(write_study(tmp_path, proxy={"batch_size": 50}, fidelity={"epochs": [2, 5],
                                                                                            "keep": 0.5}))
    assert config.fidelity == Fidelity((2, 5), 0.5, (1, 1)) and config.proxy.epochs == 2
    assert load_study_config(write_study(tmp_path, fidelity=None)).fidelity is None


def test_model_highest_needs_tpe_one_line_exit_2_nothing_written(tmp_path):
    study = write_study(tmp_path, sampler={"name": "random", "seed": 0},
                        fidelity={"epochs": [1, 3], "keep": 0.5, "model": "highest"})
    result = nas_in_process("search", study.name, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert ("fidelity.model = 'highest' needs sampler.name = 'tpe', not 'random'" in result.stderr
            and "allowed: sampler tpe, or fidelity.model rung0" in result.stderr), result.stderr
    assert not list(tmp_path.glob("*.db*"))


def test_the_shipped_example_validates():
    config = load_study_config(ROOT / "studies" / "demo_fidelity.yaml")
    assert config.fidelity == Fidelity((1, 2, 4), 0.34, (1, 1, 2)) and config.proxy.epochs == 1
    assert [label for label, _ in config.baselines] == ["none", "se", "eca", "cbam", "ge"]


# --- who qualifies ---------------------------------------------------------------------------------

def constructed_rung(values: dict[str, tuple[float, float]], baseline: str | None = None) -> optuna.Study:
    """A rung of finished candidates with the given (accuracy, MFLOPs), in this order."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for arch_id, point in values.items():
        attrs = {"arch_id": arch_id, **({"baseline": arch_id} if arch_id == baseline else {})}
        study.add_trial(create_trial(values=list(point), user_attrs=attrs))
    return study


# front A, B, C, D; B and C close together; E..I dominated (F, G, I on the second front)
POINTS = {"A": (0.50, 1.0), "B": (0.60, 2.0), "C": (0.61, 2.1), "D": (0.90, 5.0), "E": (0.55, 3.0),
          "F": (0.40, 2.0), "G": (0.59, 2.5), "H": (0.30, 4.0), "I": (0.85, 6.0)}


def test_promotion_takes_the_non_dominated_then_the_most_crowding_distant_exactly_keep():
    study = constructed_rung(POINTS)
    ids = lambda trials: [t.user_attrs["arch_id"] for t in trials]  # noqa: E731
    fidelity = Fidelity((1, 3), 0.34, (1, 1))
    # floor(0.34 x 9) = 3 of the 4 non-dominated: the extremes A and D (infinite crowding distance),
    # then C, whose neighbours (B, D) are farther apart than B's (A, C): 1.5 against 0.55
    assert ids(qualifying(candidates(study), study.directions, fidelity)) == ["A", "D", "C"]
    # floor(0.67 x 9) = 6: the whole first front, then the second front's extremes F and I before G
    assert ids(qualifying(candidates(study), study.directions, Fidelity((1, 3), 0.67, (1, 1)))) == \
        ["A", "D", "C", "B", "F", "I"]
    assert crowding_distances([[1.0, -0.5], [2.0, -0.6], [2.1, -0.61], [5.0, -0.9]])[1:3] == \
        pytest.approx([0.55, 1.5])


def test_the_quota_rounds_down_and_duplicates_count_once():
    fidelity = Fidelity((1, 3), 0.34, (1, 1))
    assert [fidelity.quota(n) for n in (1, 2, 3, 5, 6, 9, 10)] == [0, 0, 1, 1, 2, 3, 3]
    assert Fidelity((1, 3), 1 / 3, (1, 1)).quota(9) == 3  # not 2: 9 x 0.333... is 3 up to rounding
    study = constructed_rung(POINTS)
    study.add_trial(create_trial(values=[0.90, 5.0], user_attrs={"arch_id": "D", "duplicate_of": 3}))
    assert len(candidates(study)) == 9
    assert len(qualifying(candidates(study), study.directions, fidelity)) == 3


def test_baselines_always_qualify_outside_the_quota():
    study = constructed_rung({**POINTS, "worst": (0.1, 9.0)}, baseline="worst")
    chosen = qualifying(candidates(study), study.directions, Fidelity((1, 3), 0.34, (1, 1)))
    assert [t.user_attrs["arch_id"] for t in chosen] == ["worst", "A", "D", "C"]


def test_asha_promotes_whoever_is_in_the_quota_now_quota_stops_at_keep():
    study = constructed_rung({**POINTS, "worst": (0.1, 9.0)}, baseline="worst")
    rung = candidates(study)
    asha, quota = Fidelity((1, 3), 0.34, (1, 1)), Fidelity((1, 3), 0.34, (1, 1), "quota")
    pick = lambda fidelity, taken: next_promotion(rung, set(taken), study.directions, fidelity)  # noqa: E731
    arch_id = lambda trial: trial.user_attrs["arch_id"] if trial is not None else None  # noqa: E731
    # H and F went up while the rung was small; floor(0.34 x 9) = 3 of its 9 searched candidates
    assert arch_id(pick(asha, {"worst", "H", "F"})) == "A" == arch_id(pick(quota, {"worst", "H", "F"}))
    assert arch_id(pick(asha, {"worst", "H", "F", "A"})) == "D"  # asha: D is in the best 3 now
    assert pick(quota, {"worst", "H", "F", "A"}) is None  # quota: 3 went up, that is keep
    assert arch_id(pick(quota, {"H", "F", "A"})) == "worst"  # a hand placement: always, outside the quota


def test_a_study_records_its_promotion_and_model_and_is_not_resumed_with_others():
    asha = Fidelity((1, 3), 0.34, (1, 1))
    recorded = asha.to_dict()
    assert "promotion" not in recorded  # as studies made before the choice recorded it: they were asha
    assert fidelity_mismatch(recorded, asha) is None
    message = fidelity_mismatch(recorded, Fidelity((1, 3), 0.34, (1, 1), "quota"))
    assert message is not None and "'promotion': 'quota'" in message and "use another study name" in message
    assert "model" not in recorded  # nor its model: they learned from rung 0
    message = fidelity_mismatch(recorded, Fidelity((1, 3), 0.34, (1, 1), model="highest"))
    assert message is not None and "'model': 'highest'" in message


def test_claiming_enqueues_each_promotion_once_top_rungs_first(tmp_path):
    config = load_study_config(write_study(tmp_path, fidelity=FIDELITY))
    rungs, _ = open_rungs(config, create=True)
    distribution = CategoricalDistribution(["x", "y"])
    for arch_id, point in {**POINTS, "none": (0.2, 9.0)}.items():
        attrs = {"arch_id": arch_id, "arch": {"id": arch_id}, **({"baseline": "none"} if arch_id == "none" else {})}
        rungs[0].add_trial(create_trial(values=list(point), params={"p": "x"}, distributions={"p": distribution},
                                        user_attrs=attrs))
    claimed = []
    while (claim := claim_promotion(rungs, config.fidelity, first_seed=0)) is not None:
        claimed.append((claim[0], claim[1].user_attrs["arch_id"]))
    assert claimed == [(1, "none"), (1, "A"), (1, "D"), (1, "C")]  # the baseline first, then the rank order
    queued = rungs[1].get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["promoted_from"] for t in queued] == [9, 0, 3, 2]
    assert all(t.user_attrs["rung"] == 1 and t.user_attrs["epochs"] == 2 and t.user_attrs["seeds"] == [0]
               for t in queued)
    # a finished baseline at rung 1 goes on to rung 2 before anything else
    rungs[1].add_trial(create_trial(values=[0.2, 9.0], user_attrs={**queued[0].user_attrs}))
    claim = claim_promotion(rungs, config.fidelity, first_seed=0)
    assert claim is not None and claim[0] == 2 and claim[1].user_attrs["arch_id"] == "none"
    assert rungs[2].trials[0].user_attrs["seeds"] == [0, 1] and rungs[2].trials[0].user_attrs["seed"] == 0
    assert claim_promotion(rungs, config.fidelity, first_seed=0) is None  # nothing left: nothing twice


def test_a_promotion_interrupted_by_ctrl_c_is_promoted_again_with_its_finished_seeds(tmp_path):
    config = load_study_config(write_study(tmp_path, fidelity={"epochs": [1, 2], "keep": 0.5, "seeds": [1, 2]}))
    rungs, _ = open_rungs(config, create=True)
    for arch_id, point in {"A": (0.9, 1.0), "B": (0.8, 0.5), "C": (0.1, 9.0), "D": (0.2, 8.0)}.items():
        rungs[0].add_trial(create_trial(values=list(point), user_attrs={"arch_id": arch_id}))
    done = [{"seed": 0, "accuracy": 0.91}]
    for arch_id, reason in (("A", "interrupted (Ctrl-C)"), ("B", "diverged: loss is nan")):
        rungs[1].add_trial(create_trial(state=TrialState.FAIL, user_attrs={
            "arch_id": arch_id, "promoted_from": 0, "fail_reason": reason, "runs": done}))
    claim = claim_promotion(rungs, config.fidelity, first_seed=0)
    assert claim is not None and claim[1].user_attrs["arch_id"] == "A"  # B failed on its own: not again
    assert rungs[1].get_trials(states=(TrialState.WAITING,))[0].user_attrs["runs"] == done
    assert claim_promotion(rungs, config.fidelity, first_seed=0) is None


# --- a whole multi-fidelity search -----------------------------------------------------------------

@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fidelity")
    study_path = write_study(folder, trials=12, fidelity=FIDELITY)
    lines: list[str] = []
    top = nas_api.search(study_path, trainer=stub_trainer, device="cpu", log=lines.append)
    return study_path, top, lines


def test_rungs_are_studies_and_tpe_learns_from_rung_zero_only(searched):
    study_path, top, lines = searched
    studies = rung_studies(study_path, 3)
    assert top.study_name == "tiny.rung2" and [s.user_attrs["rung"] for s in studies] == [0, 1, 2]
    fidelity = Fidelity((1, 2, 4), 0.34, (1, 1, 2))
    # the study the file names holds only rung-0 results, all at epochs[0]: all its sampler sees;
    # 12 finished, a sampled repeat (reused, `duplicate_of`) not counted
    assert count_finished(studies[0]) == 12
    assert all(t.user_attrs["epochs"] == 1 and t.user_attrs["rung"] == 0 and "promoted_from" not in t.user_attrs
               for t in studies[0].trials)
    assert_promotions_sound(studies, fidelity)
    # the baselines reached the top rung, whatever their rank
    assert {t.user_attrs.get("baseline") for t in studies[2].trials} >= {"none", "se"}
    for trial in studies[2].trials:
        attrs = trial.user_attrs
        assert attrs["seeds"] == [0, 1] and len(attrs["accuracies"]) == 2
        assert trial.values[0] == pytest.approx(sum(attrs["accuracies"]) / 2)
        assert attrs["accuracy_std"] >= 0 and [r["seed"] for r in attrs["runs"]] == [0, 1]
    # compute accounting: images per run = epochs x seeds x 150 (180 training images, batches of 50)
    for k, study in enumerate(studies):
        for trial in study.get_trials(states=(TrialState.COMPLETE,)):
            expected = 0 if "duplicate_of" in trial.user_attrs else fidelity.epochs[k] * fidelity.seeds[k] * 150
            assert trial.user_attrs["images_seen"] == expected and "seconds" in trial.user_attrs
    assert any(line.startswith("r2 #") and "from r1 #" in line and "2 seeds ±" in line for line in lines)
    assert lines[-1].startswith("finished trials per rung: r0 12, ")


def test_resuming_a_finished_multi_fidelity_study_has_nothing_to_do(searched):
    study_path, _, _ = searched
    lines: list[str] = []
    nas_api.search(study_path, trainer=stub_trainer, device="cpu", log=lines.append)
    assert "every promotion they earned is trained; nothing to do" in lines[-1]


def test_front_export_and_check_read_the_top_rung(searched):
    study_path, top, _ = searched
    folder = study_path.parent
    result = nas_in_process("front", study_path.name, cwd=folder)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("search front (4-epoch proxy at rung 2 (4 epochs x 2 seeds); not confirmed) of study "
                            "'tiny'")
    rows = json.loads(nas_in_process("front", study_path.name, "--json", cwd=folder).stdout)
    assert rows and {r["trial"] for r in rows} <= {t.number for t in top.best_trials}
    result = nas_in_process("export", study_path.name, "--pick", "accuracy", "-o", "best.yaml", cwd=folder)
    assert result.returncode == 0 and "at rung 2 (4 epochs x 2 seeds)" in result.stdout, result.stderr
    provenance = yaml.safe_load((folder / "best.yaml").read_text())["provenance"]
    assert provenance["study"] == "tiny.rung2" and provenance["proxy"]["epochs"] == 4
    assert provenance["metrics"]["accuracy"] == max(t.values[0] for t in top.best_trials)
    check = nas_in_process("check", study_path.name, cwd=folder)
    assert check.returncode == 0, check.stderr
    for line in ("rung 0 (1 epoch x 1 seed)", "rung 1 (2 epochs x 1 seed)", "rung 2 (4 epochs x 2 seeds)",
                 "one fidelity, 12 trials at 4 epochs", "study 'tiny.rung2'", "(exact keep: asha trains more)",
                 "total at least "):
        assert line in check.stdout, line


def test_quota_promotion_trains_exactly_what_nas_check_projects(tmp_path):
    study_path = write_study(tmp_path, trials=12, fidelity={**FIDELITY, "promotion": "quota"})
    calls = iter(range(1000))

    def improving(arch, data, proxy, device):  # each rung-0 candidate better than the last, as a learning
        result = stub_trainer(arch, data, proxy, device)  # sampler's: where asha passes on more than keep
        return dataclasses.replace(result, accuracy=0.1 + 0.01 * next(calls)) if proxy.epochs == 1 else result

    lines: list[str] = []
    nas_api.search(study_path, trainer=improving, device="cpu", log=lines.append)
    studies = rung_studies(study_path, 3)
    fidelity = Fidelity((1, 2, 4), 0.34, (1, 1, 2), "quota")
    assert_promotions_sound(studies, fidelity)
    distinct = len(candidates(studies[0]))  # a reused duplicate is no candidate of its own
    assert [len(candidates(s)) for s in studies] == fidelity.projected_candidates(distinct, 2)
    assert "exactly the best 0.34 of each rung's finished searched candidates" in lines[0]
    check = nas_in_process("check", study_path.name, cwd=tmp_path)
    assert check.returncode == 0 and "training images per epoch (exact):" in check.stdout, check.stderr


def test_an_exhausted_space_stops_sampling_and_finishes_the_promotions(tmp_path):
    study_path = write_study(tmp_path, search_space={"kinds": ["none", "se"], "stages": [1, 2]}, baselines=["none"],
                             trials=50, fidelity={"epochs": [1, 2], "keep": 0.5})
    lines: list[str] = []
    top = nas_api.search(study_path, trainer=stub_trainer, device="cpu", log=lines.append)
    assert any(line.startswith("no more sampling: all 4 distinct architectures") for line in lines)
    studies = rung_studies(study_path, 2)
    assert_promotions_sound(studies, Fidelity((1, 2), 0.5, (1, 1)))
    assert len(studies[0].get_trials(states=(TrialState.COMPLETE,))) < 50 and top.get_trials()
    assert lines[-1].startswith("finished trials per rung: ")


def test_a_settled_sampler_stops_sampling_and_finishes_the_promotions(tmp_path, monkeypatch):
    """Reused duplicates at rung 0 one after another end the sampling as an exhausted space does,
    instead of sampling forever toward a target repeats no longer count for."""
    monkeypatch.setattr(asha, "MAX_REPEATS_IN_A_ROW", 2)
    study_path = write_study(tmp_path, baselines=["none"], trials=6, fidelity={"epochs": [1, 2], "keep": 0.5},
                             sampler={"name": "random", "seed": 0})
    config = load_study_config(study_path)
    data = load_dataset(**config.dataset)
    none = config.baseline_arch(nas_api.BlockSpec("none"), data.num_classes, data.in_chans)
    monkeypatch.setattr(type(config.space), "sample", lambda self, trial, template: none)
    lines: list[str] = []
    nas_api.search(config, data=data, trainer=stub_trainer, device="cpu", log=lines.append)
    rung0 = rung_studies(study_path, 2)[0].trials
    assert [t.user_attrs.get("duplicate_of") for t in rung0] == [None, 0, 0]
    assert any(line.startswith("no more sampling: the sampler proposed only architectures already evaluated for 2 "
                               "trials in a row (1/6 finished trials") for line in lines)
    assert lines[-1].startswith("finished trials per rung: r0 1, r1 1")


def test_a_single_fidelity_study_is_not_resumed_with_rungs_nor_the_other_way(tmp_path):
    study_path = write_study(tmp_path, trials=2, baselines=["none"])
    nas_api.search(study_path, trainer=stub_trainer, device="cpu", log=lambda line: None)
    study_path.write_text(yaml.safe_dump({**yaml.safe_load(study_path.read_text()), "fidelity": FIDELITY}))
    with pytest.raises(StudyError, match="was searched at a single fidelity, but the study file asks for fidelity"):
        nas_api.search(study_path, trainer=stub_trainer, device="cpu", log=lambda line: None)


# --- many workers, a killed worker -----------------------------------------------------------------

@pytest.mark.parametrize("promotion", ["asha", "quota"])
def test_two_workers_promote_each_candidate_once_and_both_finish(tmp_path, promotion):
    fidelity = {"epochs": [1, 2, 3], "keep": 0.5, "seeds": [1, 1, 2], "promotion": promotion}
    study_path = write_study(tmp_path, trials=10, fidelity=fidelity)
    log = tmp_path / "runs.log"
    workers = [worker(study_path, log) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
        assert "Traceback" not in err and "locked" not in err.lower()
    studies = rung_studies(study_path, 3)
    assert_promotions_sound(studies, Fidelity((1, 2, 3), 0.5, (1, 1, 2), promotion))
    assert not any(t.state == TrialState.FAIL for s in studies for t in s.trials)
    runs = [line.split(" ") for line in log.read_text().split("\n")[:-1]]
    trained = [tuple(run[:3]) for run in runs]  # (arch_id, epochs, seed)
    assert len(trained) == len(set(trained)), "a run was trained twice"
    assert len({run[3] for run in runs}) == 2  # both workers trained
    assert len(studies[0].get_trials(states=(TrialState.COMPLETE,))) >= 10


def test_kill_9_during_a_promotion_trains_it_once_afterwards_and_loses_nothing(tmp_path):
    study_path = write_study(tmp_path, trials=4, baselines=["none"],
                             fidelity={"epochs": [1, 2], "keep": 0.5, "seeds": [1, 2]})
    log, hold = tmp_path / "runs.log", tmp_path / "hold"
    hold.touch()

    def training_second_seed() -> bool:  # the promotion's seed 0 is saved, seed 1 is being trained
        running = rung_studies(study_path, 2)[1].get_trials(states=(TrialState.RUNNING,))
        return bool(running) and len(running[0].user_attrs.get("runs", [])) == 1

    first = worker(study_path, log, hold)
    try:
        wait_for(training_second_seed, what="a promotion half trained")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
    studies = rung_studies(study_path, 2)
    killed = studies[1].get_trials(states=(TrialState.RUNNING,))[0]
    before = {(k, t.number): (t.values, t.user_attrs["arch_id"])
              for k, s in enumerate(studies) for t in s.get_trials(states=(TrialState.COMPLETE,))}
    hold.unlink()
    again = worker(study_path, log)
    _out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    studies = rung_studies(study_path, 2)
    after = {(k, t.number): (t.values, t.user_attrs["arch_id"])
             for k, s in enumerate(studies) for t in s.get_trials(states=(TrialState.COMPLETE,))}
    assert {key: after[key] for key in before} == before  # every finished trial unchanged
    dead = studies[1].trials[killed.number]
    assert dead.state == TrialState.FAIL and "died" in dead.user_attrs["fail_reason"]
    retries = [t for t in studies[1].trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    retry = retries[0].user_attrs
    assert retry["arch_id"] == killed.user_attrs["arch_id"] and retry["promoted_from"] == killed.user_attrs[
        "promoted_from"]
    assert retry["seeds"] == [0, 1] and len(retry["accuracies"]) == 2
    # seed 0 was trained once, by the killed worker; the retry trained only seed 1
    runs = [line.split(" ") for line in log.read_text().split("\n")[:-1]]
    mine = [(epochs, seed) for arch_id, epochs, seed, _ in runs if arch_id == killed.user_attrs["arch_id"]]
    assert sorted(mine) == [("1", "0"), ("2", "0"), ("2", "1")]
    assert_promotions_sound(studies, Fidelity((1, 2), 0.5, (1, 2)))


# --- fidelity.model: highest (BOHB's rule) ---------------------------------------------------------

def one_parameter_rung(best: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """12 finished trials of one categorical parameter, where x = `best` scores highest."""
    dist = CategoricalDistribution(["a", "b", "c", "d"])
    study = optuna.create_study(directions=["maximize", "minimize"], storage=storage)
    for i in range(12):
        x = "abcd"[i % 4]
        study.add_trial(create_trial(params={"x": x}, distributions={"x": dist},
                                     values=[0.9 if x == best else 0.1 * (i % 4), 1.0]))
    return study


@pytest.mark.parametrize(("min_trials", "learns_from", "proposes"), [(12, 1, "d"), (13, 0, "a")])
def test_the_model_learns_from_the_highest_rung_with_enough_trials(min_trials, learns_from, proposes):
    storage = optuna.storages.InMemoryStorage()  # one storage for the rungs, as in a search
    rung0, rung1 = one_parameter_rung("a", storage), one_parameter_rung("d", storage)
    inner = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True, constant_liar=True)
    rung0.sampler = sampler = HighestRungModel(inner, lambda: [rung1], min_trials)
    proposals = []
    for _ in range(20):
        trial = rung0.ask()
        proposals.append(trial.suggest_categorical("x", ["a", "b", "c", "d"]))
        assert sampler.model_rung == learns_from
        rung0.tell(trial, state=TrialState.FAIL)  # out of every later history
    assert proposals.count(proposes) >= 15, proposals
    assert len(rung1.trials) == 12  # the proposals are rung 0's trials, never the model's rung's


def test_a_search_with_model_highest_samples_from_rung_one_once_it_has_enough(tmp_path):
    study_path = write_study(tmp_path, trials=14, sampler={"name": "tpe", "seed": 0, "n_startup_trials": 3},
                             fidelity={"epochs": [1, 2], "keep": 0.5, "model": "highest"})
    lines: list[str] = []
    nas_api.search(study_path, trainer=stub_trainer, device="cpu", log=lines.append)
    assert "the sampler learns from the highest rung with 3 or more finished trials (model: highest" in lines[0]
    rung0, rung1 = rung_studies(study_path, 2)
    assert rung0.user_attrs["fidelity"]["model"] == "highest"
    assert_promotions_sound([rung0, rung1], Fidelity((1, 2), 0.5, (1, 1), model="highest"))
    sampled = [t for t in rung0.trials if "baseline" not in t.user_attrs]
    assert all("model_rung" not in t.user_attrs for t in rung0.trials if "baseline" in t.user_attrs)
    learned = [t.user_attrs["model_rung"] for t in sampled]
    assert learned[0] == 0 and learned[-1] == 1 and learned == sorted(learned), learned  # one worker: rung 1 only grows
    for trial in sampled:  # rung 1 had 3 finished trials when (and only when) a proposal learned from it
        finished = [t for t in rung1.get_trials(states=(TrialState.COMPLETE,))
                    if t.datetime_complete < trial.datetime_start]
        assert (len(finished) >= 3) == (trial.user_attrs["model_rung"] == 1)
    check = nas_in_process("check", study_path.name, cwd=tmp_path)
    assert check.returncode == 0 and "(model: highest, BOHB's rule)" in check.stdout, check.stderr
