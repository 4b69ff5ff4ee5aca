"""The one-shot evaluator (nas.supernet, nas.study.oneshot): weight inheritance, sharing, batch-norm
recalibration, resume, a study scored from a supernet, and the refusals."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
import torch
from conftest import nas_in_process, write_study

from nas import ArchConfig, BlockSpec, ProxyConfig, load_dataset
from nas.errors import ConfigError
from nas.layout import memory_format
from nas.space import SearchSpace
from nas.supernet import Supernet, load_supernet, save_supernet, score_architecture, train_supernet
from nas.train import score_weights, train_proxy

SPACE = SearchSpace.from_dict({"kinds": ["none", "se", "eca", "cbam", "ge"], "se": {"reduction": [2, 4]},
                               "eca": {"kernel_size": [3, 5]}, "placement": ["block", "pre", "stage"]})


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", image_size=16, subset=200)


def template(data) -> ArchConfig:
    return ArchConfig.uniform("cifar_resnet", BlockSpec("none"), {"depth": 8, "width": 4}, data.num_classes,
                              data.in_chans)


@pytest.mark.parametrize("sharing", ["choice", "placement", "kind"])
def test_a_subnet_with_inherited_weights_is_the_standalone_network(data, sharing):
    net = Supernet(template(data), SPACE, sharing=sharing, seed=0)
    train_supernet(net, data, ProxyConfig(epochs=1, batch_size=50, bn_recal=0), "cpu", progress=False)
    x = torch.randn(3, data.in_chans, 16, 16)
    fmt = memory_format(torch.device("cpu"))  # training left the supernet in the machine's layout
    for _ in range(6):
        arch = net.sample()
        # in the same layout, as scoring puts it (channels_last on AVX-512 CPUs): another layout
        # picks other conv kernels, equal only to the last bit of float32
        standalone = net.subnet(arch).eval().to(memory_format=fmt)
        assert not isinstance(standalone, Supernet)
        net.eval()
        net.active = arch
        with torch.no_grad():
            assert torch.equal(net(x), standalone(x)), arch.arch_id


def test_sharing_decides_which_choices_share_weights(data):
    se4 = BlockSpec("se", reduction=4)
    se2_pre = BlockSpec("se", reduction=2, placement="pre")
    base = template(data)

    def arch(spec: BlockSpec) -> ArchConfig:
        return dataclasses.replace(base, stages=(spec, BlockSpec("none"), BlockSpec("none")))

    def fc_weight(net: Supernet, spec: BlockSpec) -> torch.Tensor:
        model = net.subnet(arch(spec))
        return next(t for n, t in model.state_dict().items() if "attn" in n and t.ndim == 4)

    kind = Supernet(base, SPACE, sharing="kind")
    choice = Supernet(base, SPACE, sharing="choice")
    # kind: r4 at `block` takes the leading rows of r2 at `pre`'s first excitation weight (Once-for-All slicing)
    small, large = fc_weight(kind, se4), fc_weight(kind, se2_pre)
    assert small.shape[0] < large.shape[0]
    assert torch.equal(small, large[: small.shape[0], : small.shape[1]])
    small, large = fc_weight(choice, se4), fc_weight(choice, se2_pre)
    assert not torch.equal(small, large[: small.shape[0], : small.shape[1]])
    assert len(choice.blocks) > len(kind.blocks)


def test_the_backbone_is_shared_and_untouched_by_a_block_choice(data):
    net = Supernet(template(data), SPACE, sharing="choice")
    a, b = net.sample(), net.sample()
    sa, sb = net.subnet(a).state_dict(), net.subnet(b).state_dict()
    assert torch.equal(sa["stem.0.weight"], sb["stem.0.weight"])
    head_a, head_b = list(sa)[-2:], list(sb)[-2:]  # the classifier's weight and bias
    assert all(torch.equal(sa[x], sb[y]) for x, y in zip(head_a, head_b, strict=True))


def test_training_moves_only_what_the_sampled_architectures_use(data):
    space = SearchSpace.from_dict({"kinds": ["none"]})
    net = Supernet(template(data), space, sharing="kind", extra=(ArchConfig.uniform(
        "cifar_resnet", BlockSpec("se", reduction=2), {"depth": 8, "width": 4}, data.num_classes, data.in_chans),))
    before = {k: v.clone() for k, v in net.blocks.items()}
    stem = net.backbone.stem[0].weight.detach().clone()
    net._extra = tuple(() for _ in net._extra)  # never sample the extra SE: its weights must stay as initialised
    train_supernet(net, data, ProxyConfig(epochs=1, batch_size=50, bn_recal=0), "cpu", progress=False)
    assert all(torch.equal(before[k], v) for k, v in net.blocks.items())
    assert not torch.equal(stem, net.backbone.stem[0].weight)


def test_scores_recalibrate_batch_norm_for_the_architecture(data):
    net = Supernet(template(data), SPACE, sharing="kind")
    train_supernet(net, data, ProxyConfig(epochs=2, batch_size=50, bn_recal=0), "cpu", progress=False)
    arch = net.sample()
    model = net.subnet(arch)
    stale = model.stem[1].running_mean.clone()
    accuracy, loss = score_weights(model, data, ProxyConfig(bn_recal=100), "cpu")
    assert not torch.equal(stale, model.stem[1].running_mean)  # statistics measured under this architecture
    assert (accuracy, loss) == score_architecture(net, arch, data, ProxyConfig(bn_recal=100), "cpu")
    assert 0 <= accuracy <= 1


def test_a_killed_supernet_training_resumes_bit_for_bit(data, tmp_path):
    config = ProxyConfig(epochs=3, batch_size=50, bn_recal=0)
    whole = Supernet(template(data), SPACE, sharing="kind")
    train_supernet(whole, data, config, "cpu", progress=False)

    class Killed(Exception):
        pass

    def kill(epoch: int, accuracy: float) -> None:
        raise Killed  # after the first epoch's checkpoint

    checkpoint = tmp_path / "run.checkpoint"
    with pytest.raises(Killed):
        train_proxy(Supernet(template(data), SPACE, sharing="kind"), data, config, "cpu", False, on_epoch=kill,
                    checkpoint=checkpoint)
    assert checkpoint.exists()
    resumed = Supernet(template(data), SPACE, sharing="kind")
    train_supernet(resumed, data, config, "cpu", progress=False, checkpoint=checkpoint)
    for (name, a), b in zip(whole.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_a_saved_supernet_loads_and_refuses_another_space_or_backbone(data, tmp_path):
    net = Supernet(template(data), SPACE, sharing="kind")
    path = tmp_path / "s.pt"
    save_supernet(net, path, {"epochs": 1})
    again = load_supernet(path, SPACE, template(data))
    assert again.meta["epochs"] == 1
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True)
               if torch.is_tensor(a))
    other_space = SearchSpace.from_dict({"kinds": ["none", "se"]})
    with pytest.raises(ConfigError, match="another search space"):
        load_supernet(path, other_space, template(data))
    wider = ArchConfig.uniform("cifar_resnet", BlockSpec("none"), {"depth": 8, "width": 8}, data.num_classes,
                               data.in_chans)
    with pytest.raises(ConfigError, match="width=8"):
        load_supernet(path, SPACE, wider)
    truncated = tmp_path / "t.pt"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError, match="not a readable supernet file"):
        load_supernet(truncated, SPACE, template(data))
    with pytest.raises(ConfigError, match="no such supernet file"):
        load_supernet(tmp_path / "missing.pt", SPACE, template(data))


def test_a_study_scored_by_its_supernet(tmp_path):
    study = write_study(tmp_path, trials=8, evaluation={"kind": "supernet", "epochs": 1, "recal": 100},
                        confirm={"top": 2, "epochs": 1, "seeds": 2, "max_seeds": 2})
    run = nas_in_process("search", study, "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "training the supernet" in run.stdout and (tmp_path / "tiny.supernet.pt").exists()
    assert "#0    * score " in run.stdout or "#0      score " in run.stdout  # a one-shot score, not an accuracy
    # the one-shot ranking is confirmed by standalone training, and that is the front a user reads
    assert "confirming 2 architectures of study 'tiny'" in run.stdout
    front = nas_in_process("front", study)
    assert front.stdout.startswith("confirmed front (1 epochs x 2 seeds; candidates ranked by one-shot scores of a "
                                   "supernet (kind sharing)) of study 'tiny'")
    assert not list(tmp_path.glob(".tiny.supernet.pt.checkpoint"))
    loaded = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}")
    done = [t for t in loaded.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 8
    assert all(t.user_attrs["images_seen"] == 0 for t in done)  # scored, not trained
    assert loaded.user_attrs["supernet"]["sharing"] == "kind"
    # a second worker (or a resume) scores from the same file without training again
    more = nas_in_process("search", study, "--no-progress", "--trials", "10")
    assert more.returncode == 0, more.stderr
    assert "training the supernet" not in more.stdout


def test_a_supernet_of_another_study_is_refused_and_nothing_written(tmp_path):
    first = write_study(tmp_path, evaluation={"kind": "supernet", "epochs": 1, "recal": 50}, trials=3)
    assert nas_in_process("search", first, "--no-progress").returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    study = write_study(other, name="other", search_space={"kinds": ["none", "se"]},
                        evaluation={"kind": "supernet", "epochs": 1, "file": str(tmp_path / "tiny.supernet.pt")})
    run = nas_in_process("search", study, "--no-progress")
    assert run.returncode == 2
    assert "tiny.supernet.pt" in run.stderr and "another search space" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (other / "other.db").exists()


@pytest.mark.parametrize(("evaluation", "extra", "message"), [
    ({"kind": "supernet"}, {"fidelity": {"epochs": [1, 2], "keep": 0.5}}, "fidelity rungs"),
    ({"kind": "oneshot"}, {}, "evaluation.kind"),
    ({"kind": "supernet", "sharing": "layer"}, {}, "evaluation.sharing"),
    ({"kind": "supernet", "max_mb": 0.001}, {}, "evaluation.max_mb"),
])
def test_evaluation_settings_that_do_not_apply_are_refused(tmp_path, evaluation, extra, message):
    study = write_study(tmp_path, evaluation=evaluation, **extra)
    run = nas_in_process("search", study, "--no-progress")
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr
    assert not (tmp_path / "tiny.db").exists() and not (tmp_path / "tiny.supernet.pt").exists()


def test_memory_is_stated_for_a_space(data):
    from nas.study.oneshot import describe_supernet

    text = describe_supernet(Supernet(template(data), SPACE))
    assert "architectures" in text and "MB" in text and "weights" in text


def test_check_states_the_supernet_and_refuses_one_over_memory(tmp_path):
    study = write_study(tmp_path, evaluation={"kind": "supernet", "epochs": 4})
    run = nas_in_process("check", study)
    assert run.returncode == 0, run.stderr
    line = next(x for x in run.stdout.splitlines() if x.strip().startswith("evaluation"))
    assert "architectures" in line and "MB" in line and "4 epochs" in line and "tiny.supernet.pt" in line
    small = write_study(tmp_path, evaluation={"kind": "supernet", "max_mb": 0.001})
    refused = nas_in_process("check", small)
    assert refused.returncode == 2 and "evaluation.max_mb = 0.001" in refused.stderr
    plain = nas_in_process("check", write_study(tmp_path, evaluation=None)).stdout
    assert not any(x.strip().startswith("evaluation") for x in plain.splitlines())  # the proxy line says it all
