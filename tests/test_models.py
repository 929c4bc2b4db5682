"""Model registry, backbones, the AV head and the IEr model: shapes, gradients, state, and the
hand-computed Cross-modal Referrer distributions."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from ier.errors import ConfigError
from ier.methods.sop import LightUNet
from ier.models import backbones, create_model, list_models, model_config
from ier.models.backbones import EfficientNetLite0, ResNet18, efficientnet_lite0_weights_path
from ier.models.common import AVHead, LocalizationOutput, cosine_map
from ier.models.config import FrontendConfig, IERConfig, ModelConfig

BATCH = 2
N_SAMPLES = 4000  # 0.25 s at 16 kHz keeps the audio tower cheap


def tiny(**overrides) -> ModelConfig:
    return model_config("tiny", **overrides)


def inputs(
    cfg: ModelConfig, batch: int = BATCH, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, cfg.input_size, cfg.input_size, generator=gen)
    waves = 0.1 * torch.randn(batch, N_SAMPLES, generator=gen)
    return images, waves


def with_prototypes(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    if hasattr(model, "set_prototypes"):
        gen = torch.Generator().manual_seed(seed)
        k, d = model.num_clusters, model.embed_dim
        model.set_prototypes(torch.randn(k, d, generator=gen), torch.randn(k, d, generator=gen))
    return model


# --------------------------------------------------------------------------- every registered model


@pytest.mark.parametrize("name", list_models())
def test_registered_model_forward_localize_shapes(name: str) -> None:
    torch.manual_seed(0)  # parameter init independent of test order
    cfg = tiny(name=name)
    model = with_prototypes(create_model(cfg)).eval()
    images, waves = inputs(cfg)
    out = model(images, waves)
    assert isinstance(out, dict) and out
    assert all(isinstance(v, torch.Tensor) and v.shape[0] == BATCH for v in out.values())
    result = model.localize(images, waves)
    assert isinstance(result, LocalizationOutput)
    n_classes = len(model.classes)
    side = cfg.feature_size
    assert result.maps.shape == (BATCH, n_classes, side, side)
    assert result.scores.shape == (BATCH, n_classes)
    for tensor in (result.maps, result.scores):
        assert torch.isfinite(tensor).all() and tensor.min() >= 0 and tensor.max() <= 1


@pytest.mark.parametrize("name", list_models())
def test_registered_model_backward_has_finite_gradients(name: str) -> None:
    torch.manual_seed(0)  # parameter init independent of test order
    cfg = tiny(name=name)
    model = with_prototypes(create_model(cfg)).train()
    images, waves = inputs(cfg, batch=3)
    out = model(images, waves)
    loss = sum(v.float().mean() for v in out.values() if v.requires_grad)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, "no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_registered_model_state_dict_round_trip(name: str) -> None:
    torch.manual_seed(0)  # parameter init independent of test order
    cfg = tiny(name=name)
    model = with_prototypes(create_model(cfg)).eval()
    images, waves = inputs(cfg)
    clone = create_model(cfg).eval()
    clone.load_state_dict(model.state_dict())
    expected, got = model.localize(images, waves), clone.localize(images, waves)
    assert clone.classes == model.classes
    torch.testing.assert_close(got.maps, expected.maps)
    torch.testing.assert_close(got.scores, expected.scores)


def test_registry_errors_and_overrides() -> None:
    assert "ier" in list_models()
    with pytest.raises(ConfigError, match="unknown model"):
        create_model(tiny(name="no-such-model"))
    model = create_model(tiny().to_dict(), num_clusters=5)
    assert model.num_clusters == 5
    with pytest.raises(ConfigError):
        create_model(tiny(), no_such_field=1)


# --------------------------------------------------------------------------- configs


def test_model_config_json_round_trip_and_validation() -> None:
    cfg = ModelConfig(width=16, ier=IERConfig(use_aii=False, tau_v=0.05), frontend=FrontendConfig())
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and isinstance(again.ier, IERConfig)
    assert cfg.frontend.n_samples == 16_000
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['wdith'\]"):
        ModelConfig.from_dict({"wdith": 3})
    with pytest.raises(ValueError, match="width: expected an integer"):
        ModelConfig.from_dict({"width": "wide"})  # the one codec checks types too
    with pytest.raises(ValueError, match="visual_backbone"):
        ModelConfig(visual_backbone="vgg")
    with pytest.raises(ValueError, match="multiple of 16"):
        ModelConfig(input_size=100)
    with pytest.raises(ValueError, match="temperatures"):
        IERConfig(tau_a=0.0)


# --------------------------------------------------------------------------- backbones and head


@pytest.mark.parametrize(("size", "side"), [(64, 4), (128, 8), (224, 14)])
def test_visual_resnet_has_output_stride_16(size: int, side: int) -> None:
    net = ResNet18(in_channels=3, width=4).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, size, size))
    assert out.shape == (1, 32, side, side) and net.out_channels == 32


def test_audio_resnet_matches_dsol_shapes() -> None:
    net = ResNet18(in_channels=1, width=4).eval()
    with torch.no_grad():
        mid, top = net.forward_features(torch.randn(1, 1, 201, 64))
    assert mid.shape == (1, 16, 13, 4)  # DSOL: 256 x 13 x 4 at width 64
    assert top.shape == (1, 32, 13, 4)  # DSOL: 512 x 13 x 4 at width 64


def test_model_computes_dsol_log_mel_from_one_second() -> None:
    model = create_model(tiny())
    assert model.frontend(torch.zeros(1, 16_000)).shape == (1, 1, 201, 64)


def test_av_head_map_is_sigmoid_of_scaled_cosine() -> None:
    head = AVHead(visual_channels=3, audio_channels=3, projection=False, beta_init=5.0)
    fv = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]).T.reshape(1, 3, 1, 2)
    fa = torch.tensor([[3.0, 0.0, 0.0]])
    expected = torch.tensor([1 / (1 + math.exp(-5.0)), 0.5]).reshape(1, 1, 1, 2)
    torch.testing.assert_close(head(fv, fa), expected)
    assert cosine_map(fv, fa.unsqueeze(1).expand(1, 4, 3)).shape == (1, 4, 1, 2)
    with pytest.raises(ValueError, match="equal visual/audio channels"):
        AVHead(visual_channels=3, audio_channels=4, projection=False)


def test_images_are_checked_and_normalized() -> None:
    model = create_model(tiny())
    white = torch.ones(1, 3, 64, 64)
    normalized = model.image_normalizer(white)
    torch.testing.assert_close(
        normalized[0, :, 0, 0], torch.tensor([2.2489, 2.4286, 2.64]), atol=1e-3, rtol=0
    )
    with pytest.raises(ValueError, match="uint8"):
        model.image_normalizer(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="B, 3, H, W"):
        model.encode_visual(torch.zeros(3, 64, 64))


def test_efficientnet_lite0_loads_packaged_weights_at_stride_16() -> None:
    state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    net = EfficientNetLite0(pretrained=True).eval()
    torch.testing.assert_close(net.stem[0].weight, state["_conv_stem.weight"])
    torch.testing.assert_close(net.head[0].weight, state["_conv_head.weight"])
    with torch.no_grad():
        assert net(torch.rand(1, 3, 224, 224)).shape == (1, 1280, 14, 14)
        assert net(torch.rand(1, 3, 64, 64)).shape == (1, 1280, 4, 4)


@pytest.mark.parametrize("name", ["resnet18-audio", "efficientnet_lite0", "sop-unet"])
def test_channels_last_layout_changes_no_output(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The conv nets keep their weights channels-last (``CONV_LAYOUT``, for speed). Their outputs
    and gradients are the plain NCHW network's to float rounding, and come back contiguous."""
    torch.manual_seed(0)
    if name == "sop-unet":
        net, x = LightUNet(width=4, out_channels=3), torch.randn(2, 1, 37, 20)
        run = nn.Module.__call__
    elif name == "efficientnet_lite0":
        net, x = EfficientNetLite0(pretrained=True).eval(), torch.rand(2, 3, 96, 96)
        run = lambda n, x: n.trunk(x)  # noqa: E731
    else:
        net, x = ResNet18(in_channels=1, width=4), torch.randn(2, 1, 201, 64)
        run = lambda n, x: n.forward_features(x)[1]  # noqa: E731
    assert any(p.dim() == 4 and not p.is_contiguous() for p in net.parameters())
    plain = copy.deepcopy(net).to(memory_format=torch.contiguous_format)
    out = run(net, x)
    monkeypatch.setattr(backbones, "CONV_LAYOUT", torch.contiguous_format)
    ref = run(plain, x)
    assert out.is_contiguous() and out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    if net.training:
        out.square().mean().backward()
        ref.square().mean().backward()
        scale = max(q.grad.abs().max().item() for q in plain.parameters())
        for p, q in zip(net.parameters(), plain.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-4 * scale)


def test_pretrained_false_reads_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("pretrained=False must not read weights")

    monkeypatch.setattr(torch, "load", forbidden)
    model = create_model(tiny(visual_backbone="efficientnet_lite0"))
    assert model.visual_backbone.out_channels == 1280
    with pytest.raises(ValueError, match="no ImageNet weights"):
        create_model(tiny(pretrained=True))


# --------------------------------------------------------------------------- IEr specifics


def test_ier_outputs_before_and_after_prototypes() -> None:
    cfg = tiny(num_clusters=5)
    model = create_model(cfg).eval()
    images, waves = inputs(cfg)
    out = model(images, waves)
    assert not model.has_prototypes and model.classes == ("*",)
    assert "p_va" not in out and out["v_logits"].shape == (BATCH, 5)
    single = model.localize(images, waves)
    torch.testing.assert_close(single.maps, model.localize_single(images, waves))
    torch.testing.assert_close(single.maps, out["av_map"])
    with_prototypes(model)
    out = model(images, waves)
    k, d, side = 5, model.embed_dim, cfg.feature_size
    assert out["F"].shape == (BATCH, k, d)
    for key in ("visual_maps", "class_av_maps", "cmr_maps", "masks"):
        assert out[key].shape == (BATCH, k, side, side)
    for key in ("p_va", "p_a"):
        torch.testing.assert_close(out[key].sum(dim=1), torch.ones(BATCH))
    # p^av = p^a w / (sum p^a w + eps): one up to the eps of the normaliser
    torch.testing.assert_close(out["p_av"].sum(dim=1), torch.ones(BATCH), atol=1e-3, rtol=0)
    audio_only = model(None, waves)
    assert "fv" not in audio_only and audio_only["scores"].shape == (BATCH, k)
    assert model.classes == tuple(f"cluster_{i}" for i in range(k))


def test_classifier_heads_reset_to_small_gaussian() -> None:
    model = create_model(tiny(num_clusters=7, embed_dim=64))
    torch.nn.init.constant_(model.visual_classifier.weight, 3.0)
    torch.nn.init.constant_(model.audio_classifier.bias, 3.0)
    model.reset_classifier_heads()
    for head in (model.visual_classifier, model.audio_classifier):
        assert head.bias.abs().max() == 0
        assert 0.005 < head.weight.std() < 0.02
    fv = torch.randn(2, 64, 4, 4)
    expected = model.visual_classifier(fv.mean(dim=(2, 3)))
    torch.testing.assert_close(model.visual_logits(fv), expected)


def test_aii_offsets_start_near_zero_and_ablation_gives_one_vector() -> None:
    cfg = tiny(num_clusters=4)
    images, waves = inputs(cfg)
    model = create_model(cfg).eval()
    fa, mid = model.encode_audio(waves)
    expanded = model.expand_audio(fa, mid)
    relative = (expanded - fa.unsqueeze(1)).norm(dim=-1) / fa.norm(dim=-1, keepdim=True)
    assert 0 < relative.max() < 0.01  # Delta starts near (not exactly) zero: F_k ~ f^a
    single = create_model(tiny(num_clusters=4, ier=IERConfig(use_aii=False))).eval()
    assert single.identify is None
    fa, mid = single.encode_audio(waves)
    expanded = single.expand_audio(fa, mid)
    assert expanded.shape == (BATCH, 4, single.embed_dim)
    for k in range(4):
        torch.testing.assert_close(expanded[:, k], fa)


def test_silent_and_offscreen_filter_switches() -> None:
    base = tiny(num_clusters=4)
    images, waves = inputs(base)
    outs = {}
    for name, ier_cfg in {
        "full": IERConfig(),
        "no_silent": IERConfig(silent_filter=False),
        "no_offscreen": IERConfig(offscreen_filter=False),
    }.items():
        torch.manual_seed(0)
        model = with_prototypes(create_model(tiny(num_clusters=4, ier=ier_cfg))).eval()
        outs[name] = model(images, waves)
    full, no_silent, no_off = outs["full"], outs["no_silent"], outs["no_offscreen"]
    torch.testing.assert_close(no_silent["cmr_maps"], no_silent["visual_maps"])
    torch.testing.assert_close(full["cmr_maps"], full["visual_maps"] * full["class_av_maps"])
    assert not torch.allclose(full["cmr_maps"], full["visual_maps"])
    torch.testing.assert_close(no_off["p_av"], no_off["p_a"])
    torch.testing.assert_close(no_silent["p_av"], full["p_av"])  # only the silent filter changed
    torch.testing.assert_close(no_off["p_va"], full["p_va"])  # only the off-screen filter changed


def _hand_built_cmr_model(**ier_kwargs) -> torch.nn.Module:
    """K=3 prototypes e0, e1, e2 in D=4; beta=5, b=0; tau_v=0.1, tau_a=0.1, theta_rel=0.5."""
    model = create_model(tiny(num_clusters=3, embed_dim=4, ier=IERConfig(**ier_kwargs)))
    eye = torch.eye(4)[:3]
    model.set_prototypes(eye, eye)
    return model


def _hand_built_features() -> tuple[torch.Tensor, torch.Tensor]:
    e = torch.eye(4)
    # cells (row-major 2x2): e0, 2*e0, e1, e3  -> L^v_0 = [1,1,0,0], L^v_1 = [0,0,1,0], L^v_2 = 0
    fv = torch.stack([e[0], 2 * e[0], e[1], e[3]], dim=1).reshape(1, 4, 2, 2)
    expanded = torch.stack([e[0], e[0], e[2]]).unsqueeze(0)  # F_0 = e0, F_1 = e0, F_2 = e2
    return fv, expanded


def test_cmr_distributions_match_hand_computation() -> None:
    model = _hand_built_cmr_model()
    fv, expanded = _hand_built_features()
    out = model.cmr(fv, expanded)
    sig5 = 1 / (1 + math.exp(-5))
    torch.testing.assert_close(
        out["visual_maps"][0].flatten(1), torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    )
    # A_0 = A_1 = sigma(5 cos(e0, cells)) = [s5, s5, .5, .5]; F_2 = e2 is orthogonal: A_2 = .5
    torch.testing.assert_close(
        out["class_av_maps"][0, 1].flatten(), torch.tensor([sig5, sig5, 0.5, 0.5])
    )
    gap = [2 * sig5 / 4, 0.5 / 4, 0.0]
    exps = [math.exp(g / 0.1) for g in gap]
    torch.testing.assert_close(out["p_va"][0], torch.tensor([x / sum(exps) for x in exps]))
    torch.testing.assert_close(
        out["masks"][0].flatten(1), torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    )
    torch.testing.assert_close(out["weights"][0], torch.tensor([0.5, 0.25, 0.0]))
    torch.testing.assert_close(out["scores"][0], torch.tensor([1.0, 0.0, 1.0]))
    exps_a = [math.exp(10.0), 1.0, math.exp(10.0)]
    p_a = [x / sum(exps_a) for x in exps_a]
    torch.testing.assert_close(out["p_a"][0], torch.tensor(p_a))
    weighted = [p_a[0] * 0.5, p_a[1] * 0.25, 0.0]
    expected_av = torch.tensor([x / (sum(weighted) + 1e-6) for x in weighted])
    torch.testing.assert_close(out["p_av"][0], expected_av)
    assert out["p_av"][0, 2].item() == 0.0  # heard (s_2 = 1) but nowhere visible: erased exactly


def test_cmr_absolute_mask_floor_and_no_mask_gradient() -> None:
    model = _hand_built_cmr_model(theta_abs=0.9)
    fv, expanded = _hand_built_features()
    fv = fv.clone()
    fv[0, :, 1, 0] = torch.tensor([0.0, 1.0, 0.0, 1.0])  # L^v_1 peak is now cos = 0.707 < 0.9
    fv.requires_grad_(True)
    out = model.cmr(fv, expanded)
    torch.testing.assert_close(out["weights"][0], torch.tensor([0.5, 0.0, 0.0]))
    assert not out["masks"].requires_grad and not out["weights"].requires_grad
    out["p_va"][0, 0].backward()
    assert fv.grad is not None and torch.isfinite(fv.grad).all()


def test_localize_maps_categories_through_cluster_mapping() -> None:
    model = _hand_built_cmr_model()
    fv, expanded = _hand_built_features()
    cluster_maps = model.cmr(fv, expanded)["cmr_maps"]
    model.set_class_mapping(["drum", "flute", "horn"], [1, 1, -1])
    assert model.classes == ("drum", "flute", "horn")
    category = model._to_categories(cluster_maps)
    assert category[0, 0].abs().sum() == 0 and category[0, 2].abs().sum() == 0
    torch.testing.assert_close(category[0, 1], cluster_maps[0, :2].amax(dim=0))
    with pytest.raises(ValueError, match="cluster_to_class values"):
        model.set_class_mapping(["a", "b"], [0, 1, 2])
    with pytest.raises(ValueError, match="unique"):
        model.set_class_mapping(["a", "a"], [0, 1, 1])
    with pytest.raises(ValueError, match="prototypes must be"):
        model.set_prototypes(torch.zeros(2, 4), torch.zeros(3, 4))


def test_localize_sum_reduction_and_sharpening_stay_in_unit_range() -> None:
    cfg = tiny(num_clusters=4, ier=IERConfig(category_reduce="sum", test_sharpen=3.0))
    model = with_prototypes(create_model(cfg)).eval()
    model.set_class_mapping(["a", "b"], [0, 0, 1, 1])
    images, waves = inputs(cfg)
    result = model.localize(images, waves)
    assert result.maps.shape == (BATCH, 2, cfg.feature_size, cfg.feature_size)
    # class softmax over 4 clusters, summed per category over all clusters: totals are exactly 1
    torch.testing.assert_close(
        result.maps.sum(dim=1), torch.ones(BATCH, cfg.feature_size, cfg.feature_size)
    )
    assert result.scores.min() >= 0 and result.scores.max() <= 1


def test_state_dict_round_trip_through_safetensors(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    cfg = tiny(num_clusters=3)
    for named in (False, True):
        model = with_prototypes(create_model(cfg)).eval()
        if named:
            model.set_class_mapping(["violín", "cello"], [0, 1, 1])
        path = tmp_path / f"m{int(named)}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        clone = create_model(cfg).eval()
        clone.load_state_dict(load_file(str(path)))
        assert clone.classes == model.classes
        assert torch.equal(clone.cluster_to_class, model.cluster_to_class)


# --------------------------------------------------------------------------- learning (slow)


def _patch_scenes(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Grey 64 px images with one coloured 16 px patch; the audio is that colour's tone."""
    colors = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    freqs_hz = (400.0, 1500.0, 3000.0)
    images, waves, boxes = torch.full((n, 3, 64, 64), 0.5), [], []
    t_seconds = torch.arange(N_SAMPLES) / 16_000
    for i in range(n):
        cls = int(torch.randint(0, 3, (1,), generator=gen))
        y, x = torch.randint(0, 48, (2,), generator=gen).tolist()
        images[i, :, y : y + 16, x : x + 16] = colors[cls][:, None, None]
        phase = float(torch.rand(1, generator=gen)) * 6.0
        waves.append(0.3 * torch.sin(2 * math.pi * freqs_hz[cls] * t_seconds + phase))
        boxes.append((y, x))
    return images, torch.stack(waves), boxes


def _stage1_pointing(seed: int, steps: int = 150) -> float:
    """Train a tiny model with the stage-1 AV loss alone on patch scenes; return the fraction of
    64 held-out scenes whose AV-map peak cell touches the sounding patch (chance about 0.25)."""
    from ier.losses import av_bce_loss

    torch.manual_seed(seed)
    model = create_model(tiny())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1 + seed)
    for _ in range(steps):
        images, waves, _ = _patch_scenes(16, gen)
        fv = model.encode_visual(images)
        fa, _ = model.encode_audio(waves)
        loss = av_bce_loss(model.av_map(fv, fa), model.av_map(fv.roll(1, dims=0), fa))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    images, waves, boxes = _patch_scenes(64, torch.Generator().manual_seed(99))
    maps = model.eval().localize_single(images, waves)[:, 0]  # (64, 4, 4), 16 px cells
    hits = 0
    for i, (y, x) in enumerate(boxes):
        row, col = divmod(int(maps[i].argmax()), 4)
        hits += (y // 16 <= row <= (y + 15) // 16) and (x // 16 <= col <= (x + 15) // 16)
    return hits / 64


@pytest.mark.slow
def test_stage1_av_loss_learns_to_point_at_the_sounding_patch() -> None:
    """Averaged over 5 seeds: one seed is not a measurement here. The max-pooled L_av can settle
    on a shortcut cell (docs/results.md), so a single run lands anywhere from 0.22 to 0.70 and
    float rounding alone moves it across a fixed bar: seeds 0-4 gave 0.22 0.70 0.59 0.42 0.67
    (mean 0.52) channels-last and 0.61 0.48 0.39 0.56 0.41 (mean 0.49) NCHW, one thread,
    2026-12-03. Chance is about 0.25."""
    hits = [_stage1_pointing(seed) for seed in range(5)]
    assert sum(hits) / len(hits) > 0.35, hits


def test_objectness_is_min_max_normalised_mean_absolute_activation() -> None:
    from ier.models.common import gate_by_objectness, objectness

    features = torch.zeros(1, 2, 2, 2)
    features[0, 0] = torch.tensor([[1.0, -3.0], [0.0, 2.0]])
    features[0, 1] = torch.tensor([[1.0, 1.0], [0.0, -2.0]])
    # mean |a| per cell: [[1, 2], [0, 2]] -> min-max: [[0.5, 1], [0, 1]]
    expected = torch.tensor([[[[0.5, 1.0], [0.0, 1.0]]]])
    torch.testing.assert_close(objectness(features), expected)
    assert objectness(torch.ones(1, 3, 2, 2)).abs().sum() == 0  # a constant map carries no prior
    maps = torch.full((1, 2, 2, 2), 0.8)
    assert gate_by_objectness(maps, expected, 0.0) is maps
    torch.testing.assert_close(
        gate_by_objectness(maps, expected, 1.0), 0.8 * expected.expand(1, 2, 2, 2)
    )
    torch.testing.assert_close(
        gate_by_objectness(maps, expected, 0.5)[0, 0], 0.8 * (0.5 + 0.5 * expected[0, 0])
    )


def test_object_prior_gates_single_source_and_class_maps() -> None:
    import dataclasses

    from ier.models.common import objectness

    cfg = tiny(num_clusters=3)
    model = with_prototypes(create_model(cfg)).eval()
    model.set_class_mapping(["a", "b", "c"], [0, 1, 2])
    images, waves = inputs(cfg)
    plain_single, plain = model.localize_single(images, waves), model.localize(images, waves)
    model.config = dataclasses.replace(cfg, object_prior=1.0)
    with torch.no_grad():
        prior = objectness(model.visual_backbone(model.image_normalizer(images)))
    torch.testing.assert_close(model.localize_single(images, waves), plain_single * prior)
    gated = model.localize(images, waves)
    torch.testing.assert_close(gated.maps, plain.maps * prior)
    # the least object-like cell of every image is switched off in every class map
    assert (gated.maps.flatten(2).amin(dim=2) == 0).all()
    with pytest.raises(ValueError, match="object_prior"):
        tiny(object_prior=1.5)
    # DSOL's class softmax would lift an objectness-0 cell to 1/K: the gate applies after it
    sharp = dataclasses.replace(cfg, object_prior=1.0, ier=IERConfig(test_sharpen=3.0))
    model.config = sharp
    assert (model.localize(images, waves).maps.flatten(2).amin(dim=2) == 0).all()
    # a model whose maps would ignore the prior refuses it instead
    with pytest.raises(ConfigError, match="does not support the objectness prior"):
        create_model(tiny(name="sop", object_prior=0.5))
    assert create_model(tiny(name="ots", object_prior=0.5)).config.object_prior == 0.5
    # the default is left out of saved configs, so earlier versions can still read them
    assert "object_prior" not in cfg.to_dict() and sharp.to_dict()["object_prior"] == 1.0
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "name", ["ier", "ots", "attention", "sop", "ezvsl", "slavc", "dsol", "supervised"]
)
def test_localize_refuses_bad_input_with_a_clear_error(name: str) -> None:
    model = create_model(tiny(name=name, num_clusters=3)).eval()
    images, waves = torch.rand(2, 3, 64, 64), 0.1 * torch.randn(2, 16_000)
    for method in (model.localize, model.localize_single):
        method(images, waves)  # fine
        with pytest.raises(ValueError, match=r"in \[0, 1\].*divide by 255"):
            method(images * 255, waves)
        with pytest.raises(ValueError, match="NaN or infinite"):
            method(images, waves.clone().index_fill_(1, torch.tensor([7]), float("nan")))
        with pytest.raises(ValueError, match="same number of clips, got 1 images and 2 waves"):
            method(images[:1], waves)
        with pytest.raises(ValueError, match="float in"):
            method((images * 255).to(torch.uint8), waves)


def test_prototypes_in_the_backbone_space_and_attention_pooling() -> None:
    ier = IERConfig(prototype_space="backbone", object_pooling="attention")
    cfg = tiny(num_clusters=3, ier=ier)
    model = create_model(cfg).eval()
    assert model.prototype_dim == model.visual_backbone.out_channels != model.embed_dim
    with pytest.raises(ValueError, match=r"visual prototypes must be \(K, 64\)"):
        model.set_prototypes(torch.randn(3, model.embed_dim), torch.randn(3, model.embed_dim))
    model.set_prototypes(torch.randn(3, model.prototype_dim), torch.randn(3, model.embed_dim))
    images, waves = inputs(cfg)
    out = model(images, waves)
    assert out["pf"].shape[1] == model.prototype_dim and out["visual_maps"].shape[1] == 3
    pooled = model.object_features(out["pf"], out["av_map"])
    assert pooled.shape == (images.shape[0], model.prototype_dim)
    with pytest.raises(ValueError, match="pass the backbone features"):
        model.cmr(out["fv"], out["F"])
    with pytest.raises(ValueError, match="prototype_space"):
        IERConfig(prototype_space="pixels")


def test_aii_input_variants_feed_the_identify_branch() -> None:
    pooled = create_model(tiny(num_clusters=3, ier=IERConfig(aii_input="pooled")))
    fa, mid = pooled.encode_audio(0.1 * torch.randn(2, 16_000))
    width = pooled.config.width
    assert mid.shape == (2, 24 * width) == (2, pooled.mid_channels)
    assert pooled.identify.mlp[0].normalized_shape == (24 * width,)
    plain = create_model(tiny(num_clusters=3))
    assert plain.encode_audio(0.1 * torch.randn(2, 16_000))[1].shape == (2, 4 * width)
    with pytest.raises(ValueError, match="aii_loss"):
        IERConfig(aii_loss="hinge")
