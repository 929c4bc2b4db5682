"""Baselines: every registered method trains a few steps through ``ier.train.fit`` and localizes;
hand-computed losses, box targets, maps and the DSOL teacher alignment."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ier.losses as tb
from ier.checkpoint import load_model
from ier.codec import apply_overrides
from ier.data.datasets import load_split, read_classes
from ier.data.toy import build_toy_benchmark
from ier.methods import preset
from ier.methods.dsol import DSOLCategoryTask
from ier.models import create_model, list_models, model_config
from ier.train import fit

SMOKE_STEPS = 2


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory):
    return build_toy_benchmark(tmp_path_factory.mktemp("toy"), n_train=24, n_test=8)


def smoke_config(method: str, cache_dir) -> object:
    cfg = preset(method, "tiny")
    overrides = ["eval.at_end=false", f"data.cache_dir={cache_dir}", "data.train_frames=1"]
    for i in range(len(cfg.stages)):
        overrides += [f"stages.{i}.epochs=1", f"stages.{i}.max_steps={SMOKE_STEPS}",
                      f"stages.{i}.batch_size=8"]  # fmt: skip
    return apply_overrides(cfg, overrides)


# --------------------------------------------------------------------------- every registered model


@pytest.mark.parametrize("method", list_models())
def test_every_registered_method_trains_and_localizes(method, toy_data, tmp_path) -> None:
    cfg = smoke_config(method, tmp_path / "cache")  # a model without a recipe fails here
    result = fit(cfg, toy_data, tmp_path / "run", progress=False)
    trained = load_model(result.model_path)
    classes = read_classes(toy_data)
    torch.manual_seed(cfg.seed)
    initial = create_model(dataclasses.replace(cfg.model, num_clusters=len(classes)))
    changed = [
        name for name, p in trained.named_parameters()
        if not torch.equal(p, initial.state_dict()[name])
    ]  # fmt: skip
    assert changed, "no parameter moved during training"
    test = load_split(
        toy_data, "test/wild", classes=classes, input_size=cfg.model.input_size,
        sample_rate=16_000, num_samples=cfg.model.frontend.n_samples, train=False,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    images = torch.stack([test[i]["image"] for i in range(4)])
    waves = torch.stack([test[i]["wave"] for i in range(4)])
    out = trained.localize(images, waves)
    side = cfg.model.input_size // 16
    assert out.maps.shape == (4, len(trained.classes), side, side)
    assert out.scores.shape == (4, len(trained.classes))
    for tensor in (out.maps, out.scores, trained.localize_single(images, waves)):
        assert torch.isfinite(tensor).all() and tensor.min() >= 0 and tensor.max() <= 1
    assert trained.localize_single(images, waves).shape == (4, 1, side, side)
    if trained.classes != ("*",):  # class-aware: named after the data's categories
        assert set(trained.classes) <= set(classes)


BASELINES = ("ots", "attention", "sop", "dsol", "ezvsl", "slavc", "supervised")


def test_every_baseline_has_a_recipe_and_model() -> None:
    from ier.methods import list_methods

    assert set(BASELINES) <= set(list_models())
    assert list_methods() == ["ots", "attention", "sop", "ezvsl", "slavc", "dsol", "ier",
                              "supervised"]  # the tables' order  # fmt: skip


@pytest.mark.parametrize("name", ["tiny", "quick", "paper"])
def test_baselines_get_iers_epochs_on_each_split(name) -> None:
    def passes(cfg, split: str) -> int:
        return sum(s.epochs for s in cfg.stages if s.split == split)

    ier = preset("ier", name)
    solo, wild = passes(ier, "train/solo"), passes(ier, "train/unconstrained")
    for method in BASELINES:
        cfg = preset(method, name)
        if method == "sop":  # mix-and-separate needs single-source clips: all epochs on solo
            assert (passes(cfg, "train/solo"), passes(cfg, "train/unconstrained")) == (
                solo + wild,
                0,
            )
        else:
            assert (passes(cfg, "train/solo"), passes(cfg, "train/unconstrained")) == (solo, wild)
        assert {s.batch_size for s in cfg.stages} == {ier.stages[0].batch_size}
        assert cfg.model.width == ier.model.width and cfg.data == ier.data


# --------------------------------------------------------------------------- losses (known values)


def test_margin_contrastive_loss_known_value() -> None:
    pos, neg = torch.tensor([0.5, 0.0]), torch.tensor([0.25, 2.0])
    # mean of [0.25, 0, (1 - 0.25)^2, 0] halved
    expected = 0.5 * (0.25 + 0.0 + 0.5625 + 0.0) / 4
    assert tb.margin_contrastive_loss(pos, neg, margin=1.0).item() == pytest.approx(expected)


def test_mil_infonce_loss_uses_the_best_cell() -> None:
    audio = torch.eye(2)  # two orthogonal unit audio vectors
    visual = torch.zeros(2, 2, 1, 2)
    visual[0, :, 0, 1] = audio[0]  # image 0 holds audio 0 in its 2nd cell only
    visual[1, :, 0, 0] = audio[1]
    logits = tb.mil_logits(visual, audio, tau=0.5)
    assert torch.allclose(logits, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    expected = 2 * F.cross_entropy(torch.tensor([[2.0, 0.0]]), torch.tensor([0])).item()
    assert tb.mil_infonce_loss(visual, audio, tau=0.5).item() == pytest.approx(expected)


def test_slavc_loss_matches_a_naive_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    b, d, h, w, tau = 3, 4, 2, 2, 0.5
    unit = lambda *shape: F.normalize(torch.randn(*shape, generator=gen), dim=1)  # noqa: E731
    out = {k: unit(b, d, h, w) for k in ("visual1", "visual2", "visual1_t", "visual2_t")}
    out.update({k: unit(b, d) for k in ("audio1", "audio2", "audio1_t", "audio2_t")})

    def match(v1, a1, v2, a2, n, m):  # P(pair n, m) = sum_xy p1(m | n, xy) p2(xy | n, m)
        s1 = torch.stack([torch.einsum("chw,c->hw", v1[n], a1[j]).flatten() for j in range(b)])
        p1 = torch.softmax(s1 / tau, dim=0)[m]
        p2 = torch.softmax(torch.einsum("chw,c->hw", v2[n], a2[m]).flatten() / tau, dim=0)
        return torch.log((p1 * p2).sum())

    i2a = torch.tensor([[match(out["visual1"], out["audio1_t"], out["visual2"], out["audio2_t"],
                               n, m) for m in range(b)] for n in range(b)])  # fmt: skip
    a2i = torch.tensor([[match(out["visual1_t"], out["audio1"], out["visual2_t"], out["audio2"],
                               n, m) for m in range(b)] for n in range(b)])  # fmt: skip
    labels = torch.arange(b)
    expected = F.cross_entropy(a2i, labels) + F.cross_entropy(i2a, labels)
    assert tb.slavc_loss(out, tau=tau).item() == pytest.approx(expected.item(), rel=1e-5)


def test_box_coverage_known_values() -> None:
    cover = tb.box_coverage(torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]), 2, 2)
    assert torch.allclose(cover[0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert torch.allclose(cover[1], torch.full((2, 2), 0.25))


def test_box_coverage_stays_a_valid_bce_target_under_rounding() -> None:
    # Boxes that start on a cell edge (as feature-space crops make them) used to give 1 + 1e-7,
    # which F.binary_cross_entropy rejects.
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 7, (2000,), generator=gen).float() / 14
    rest = torch.rand(2000, 3, generator=gen)
    boxes = torch.stack([x0, rest[:, 0] * 0.5, 0.5 + rest[:, 1] * 0.5, 0.5 + rest[:, 2] * 0.5], 1)
    cover = tb.box_coverage(boxes, 14, 14)
    assert cover.min() >= 0.0 and cover.max() <= 1.0
    assert (cover == 1.0).any()


def test_class_box_targets_keep_sounding_boxes_per_class() -> None:
    batch = {
        "boxes": torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0, 0, 1.0, 1.0]]]),
        "box_labels": torch.tensor([[1, 0, -1]]),  # the third box is padding
        "box_sounding": torch.tensor([[True, False, True]]),
    }
    sounding = tb.class_box_targets(batch, 3, 2, 2, sounding=True)
    visible = tb.class_box_targets(batch, 3, 2, 2, sounding=False)
    assert sounding[0, 1].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert sounding[0, 0].sum() == 0 and sounding[0, 2].sum() == 0
    assert visible[0, 0].tolist() == [[0.0, 0.0], [0.0, 1.0]]


def test_separation_loss_weights_by_mixture_energy_on_the_bce_scale() -> None:
    target = torch.tensor([[[[1.0, 0.0]]]])
    loud_first = torch.tensor([[[[100.0, 0.0]]]])
    # weights clamp(log1p(x)) = log(101) and 1e-3, divided by their mean
    w = np.array([np.log(101), 1e-3])
    w = w / w.mean()
    logits = torch.tensor([[[[0.0, 2.0]]]])  # BCE log 2 on the loud bin, log(1 + e^2) on the other
    expected = (w[0] * np.log(2) + w[1] * np.log1p(np.exp(2.0))) / 2
    assert tb.separation_loss(logits, target, loud_first).item() == pytest.approx(expected)
    # Magnitudes at the weight's floor (ours are about 1e-3): the plain BCE, not 1e-3 times it.
    quiet = torch.full((1, 1, 1, 2), 1e-4)
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert tb.separation_loss(logits, target, quiet).item() == pytest.approx(plain.item())


# --------------------------------------------------------------------------- model behaviour


def test_sop_energy_map_is_the_masked_share_of_the_energy() -> None:
    model = create_model(model_config("tiny", name="sop")).eval()
    images, waves = torch.rand(2, 3, 64, 64), 0.1 * torch.randn(2, 4000)
    with torch.no_grad():
        model.synth_bias.fill_(30.0)  # every mask is 1: every pixel holds all the energy
        assert torch.allclose(model.localize(images, waves).maps, torch.ones(2, 1, 4, 4))
        model.synth_bias.fill_(-30.0)
        assert model.localize(images, waves).maps.max() < 1e-6


def test_sop_says_that_another_audio_backbone_does_not_apply(caplog) -> None:
    with caplog.at_level("WARNING", logger="ier.methods.sop"):
        create_model(model_config("tiny", name="sop"))
        assert not caplog.records
        create_model(model_config("tiny", name="sop", audio_backbone="aisfx", pretrained=False))
    assert "model.audio_backbone='aisfx' does not apply" in caplog.text


def test_attention_map_peaks_at_the_match_score() -> None:
    model = create_model(model_config("tiny", name="attention")).eval()
    images, waves = torch.rand(2, 3, 64, 64), 0.1 * torch.randn(2, 4000)
    out = model(images, waves)
    maps = model.localize(images, waves).maps
    assert torch.allclose(maps.flatten(1).amax(1), model.match_score(out["distance"]))
    assert torch.allclose(out["attention"].flatten(1).sum(1), torch.ones(2))


def test_slavc_momentum_update_is_an_ema_of_the_online_towers() -> None:
    model = create_model(model_config("tiny", name="slavc"))
    with torch.no_grad():
        for p in model.online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.target.parameters()]
    model.momentum_update()
    m = model.momentum
    for old, online, new in zip(before, model.online.parameters(), model.target.parameters()):
        assert torch.allclose(new, m * old + (1 - m) * online)
    assert not any(p.requires_grad for p in model.target.parameters())


def test_dsol_class_maps_form_a_distribution_over_categories() -> None:
    cfg = model_config("tiny", name="dsol", num_clusters=3)
    model = create_model(cfg).eval()
    model.set_prototypes(torch.randn(3, model.embed_dim), torch.randn(3, model.embed_dim))
    model.set_class_mapping(("a", "b", "c"), [2, 0, 1])
    out = model.localize(torch.rand(2, 3, 64, 64), 0.1 * torch.randn(2, 4000))
    assert model.classes == ("a", "b", "c") and model.identify is None
    assert torch.allclose(out.maps.sum(dim=1), torch.ones(2, 4, 4), atol=1e-5)


def test_dsol_teacher_alignment_recovers_a_cluster_permutation() -> None:
    model = create_model(model_config("tiny", name="dsol", num_clusters=3))
    d = model.embed_dim
    prototypes = torch.zeros(3, d)
    prototypes[torch.arange(3), torch.arange(3)] = 1.0
    model.set_prototypes(prototypes, prototypes)
    permutation = torch.tensor([2, 0, 1])  # dictionary row k is the head's class permutation[k]
    with torch.no_grad():
        model.audio_classifier.weight.zero_()
        model.audio_classifier.weight[permutation, torch.arange(3)] = 10.0
        model.audio_classifier.bias.zero_()
    stage = preset("dsol", "tiny").stages[1]
    task = DSOLCategoryTask(model, stage, seed=0)
    task.order = task._align()
    assert task.order.tolist() == permutation.tolist()
    state = task.extra_state()
    fresh = DSOLCategoryTask(create_model(model_config("tiny", name="dsol", num_clusters=3)),
                                stage, seed=0)  # fmt: skip
    fresh.load_extra_state(state)
    assert fresh.order.tolist() == permutation.tolist()
    assert torch.equal(fresh.teacher.audio_classifier.weight, model.audio_classifier.weight)


def test_supervised_class_names_survive_a_state_dict_round_trip() -> None:
    cfg = model_config("tiny", name="supervised", num_clusters=2)
    model = create_model(cfg)
    model.set_classes(("dog", "cat"))
    fresh = create_model(cfg)
    assert fresh.classes == ("class_0", "class_1")
    fresh.load_state_dict(model.state_dict())
    assert fresh.classes == ("dog", "cat")
    with pytest.raises(ValueError, match="need 2 class names"):
        model.set_classes(("dog",))


# --------------------------------------------------------------------------- learning (slow)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ots", "supervised"])
def test_baseline_localizes_toy_sounds_better_than_a_uniform_map(method, tmp_path) -> None:
    """20 epochs of the first stage on toy scenes (a coloured square hums its tone). As the IEr
    test in test_train.py: 96 px (a 4 x 4 map is too coarse for a reliable margin) and alpha = 0.5
    keeps the coarse map from binarising to all-on. lr 1e-3: at 3e-3 the OTS loss stalls near
    0.57 and its map never finds the square (AUC at or below the uniform map's)."""
    from ier.data.manifest import read_manifest
    from ier.evaluate import evaluate
    from ier.predictions import Predictions, load_predictions
    from ier.protocol import EvalSettings

    data = build_toy_benchmark(tmp_path / "data", n_train=64, n_test=16)
    cfg = preset(method, "tiny")
    cfg = dataclasses.replace(cfg, stages=cfg.stages[:1])
    cfg = apply_overrides(cfg, [
        "stages.0.epochs=20", "stages.0.batch_size=8", "stages.0.lr=1e-3",
        "model.input_size=96", "data.train_frames=1", "eval.splits=test/solo",
    ])  # fmt: skip
    result = fit(cfg, data, tmp_path / "run", progress=False)
    losses = [r["loss"] for r in result.history]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    preds = load_predictions(tmp_path / "run/eval/predictions_solo.npz")
    uniform = Predictions(ids=preds.ids, classes=preds.classes, maps=np.ones_like(preds.maps))
    samples = read_manifest(data / "test/solo/manifest.jsonl")
    settings = EvalSettings(alpha=0.5)
    learned, flat = evaluate(preds, samples, settings), evaluate(uniform, samples, settings)
    assert learned["auc"] > flat["auc"] + 0.03
