"""Losses: known values on tiny tensors, symmetry, and which side receives gradients."""

from __future__ import annotations

import math

import pytest
import torch

from ier.losses import (
    av_bce_loss,
    kl_divergence,
    prototype_bce_loss,
    prototype_loss,
    pseudo_label_ce,
    symmetric_kl,
)


def test_av_bce_global_negatives_known_value() -> None:
    pos = torch.zeros(2, 1, 3, 3)
    pos[0, 0, 1, 1], pos[1, 0, 0, 2] = 0.8, 0.5
    neg = torch.full((1, 1, 3, 3), 0.1)
    neg[0, 0, 2, 2] = 0.3
    expected = 0.5 * (-(math.log(0.8) + math.log(0.5)) / 2 - math.log(0.7))
    assert av_bce_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)
    assert av_bce_loss(pos[:, 0], neg[:, 0]).item() == pytest.approx(expected, rel=1e-6)


def test_av_bce_quadrant_negatives_known_value() -> None:
    pos = torch.full((1, 1, 4, 4), 0.9)
    neg = torch.zeros(1, 1, 4, 4)
    neg[0, 0, 0, 1], neg[0, 0, 1, 3], neg[0, 0, 3, 0], neg[0, 0, 2, 2] = 0.1, 0.2, 0.3, 0.4
    quadrant_term = -sum(math.log(1 - q) for q in (0.1, 0.2, 0.3, 0.4)) / 4
    expected = 0.5 * (-math.log(0.9) + quadrant_term)
    got = av_bce_loss(pos, neg, negative_pooling="quadrants")
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # the global rule only sees the largest response
    global_expected = 0.5 * (-math.log(0.9) - math.log(0.6))
    assert av_bce_loss(pos, neg).item() == pytest.approx(global_expected, rel=1e-6)
    with pytest.raises(ValueError, match="negative_pooling"):
        av_bce_loss(pos, neg, negative_pooling="mean")


def test_av_bce_is_finite_at_saturated_maps_and_matches_torch() -> None:
    pos = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 0.0]]]])
    neg = torch.tensor([[[[1.0, 0.0]]]])
    loss = av_bce_loss(pos, neg)
    assert torch.isfinite(loss)
    ref = 0.5 * (
        torch.nn.functional.binary_cross_entropy(torch.tensor([1.0, 0.0]), torch.ones(2))
        + torch.nn.functional.binary_cross_entropy(torch.tensor([1.0]), torch.zeros(1))
    )
    assert loss.item() == pytest.approx(ref.item())


def test_pseudo_label_ce_known_value() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2)) / 2
    assert pseudo_label_ce(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_prototype_loss_normalises_multi_hot_targets() -> None:
    scores = torch.tensor([[1.0, 0.0, 0.0]])
    targets = torch.tensor([[1.0, 1.0, 0.0]])
    z = math.e + 2
    expected = -0.5 * (math.log(math.e / z) + math.log(1 / z))
    assert prototype_loss(scores, targets, tau=1.0).item() == pytest.approx(expected, rel=1e-6)
    # integer labels are one-hot targets; tau sharpens
    one_hot = prototype_loss(scores, torch.tensor([0]), tau=0.5)
    expected_one_hot = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert one_hot.item() == pytest.approx(expected_one_hot, rel=1e-5)
    with pytest.raises(ValueError, match="at least one positive"):
        prototype_loss(scores, torch.zeros(1, 3))


def test_prototype_bce_loss_known_value() -> None:
    scores = torch.tensor([[0.7, 0.2]])
    targets = torch.tensor([[1.0, 0.0]])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -(math.log(sig(2.0)) + math.log(1 - sig(-3.0))) / 2
    got = prototype_bce_loss(scores, targets, tau=0.1, margin=0.5)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert prototype_bce_loss(scores, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


def test_symmetric_kl_known_value_symmetry_and_zero() -> None:
    p = torch.tensor([[0.5, 0.5]])
    q = torch.tensor([[0.9, 0.1]])
    kl_pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert kl_divergence(p, q).item() == pytest.approx(kl_pq, rel=1e-6)
    assert symmetric_kl(p, q).item() == pytest.approx(kl_pq + kl_qp, rel=1e-6)
    assert symmetric_kl(q, p).item() == pytest.approx(symmetric_kl(p, q).item(), rel=1e-7)
    assert symmetric_kl(p, p.clone()).item() == 0.0
    batch = torch.softmax(torch.randn(4, 5, generator=torch.Generator().manual_seed(0)), dim=1)
    assert symmetric_kl(batch, batch.roll(1, dims=0)).item() > 0


def test_kl_treats_zero_probability_terms_as_zero() -> None:
    p = torch.tensor([[1.0, 0.0]])  # e.g. p^av with an erased off-screen class
    q = torch.tensor([[0.5, 0.5]])
    assert kl_divergence(p, q).item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert torch.isfinite(symmetric_kl(p, q))


def test_symmetric_kl_detach_sends_each_term_gradient_to_its_student() -> None:
    logits_p = torch.tensor([[0.3, -0.2, 0.1]], requires_grad=True)
    logits_q = torch.tensor([[-0.5, 0.4, 0.0]], requires_grad=True)

    def grads(fn):
        for t in (logits_p, logits_q):
            t.grad = None
        fn(torch.softmax(logits_p, 1), torch.softmax(logits_q, 1)).backward()
        return tuple(
            torch.zeros(1, 3) if t.grad is None else t.grad.clone() for t in (logits_p, logits_q)
        )

    gp, gq = grads(lambda p, q: symmetric_kl(p, q, detach_targets=True))
    gp_student, gq_none = grads(lambda p, q: kl_divergence(q.detach(), p))  # p is student here
    gp_none, gq_student = grads(lambda p, q: kl_divergence(p.detach(), q))  # q is student here
    assert gq_none.abs().sum() == 0 and gp_none.abs().sum() == 0
    assert gp.abs().sum() > 0 and gq.abs().sum() > 0
    torch.testing.assert_close(gp, gp_student)
    torch.testing.assert_close(gq, gq_student)
    # a teacher side alone gets no gradient at all
    logits_p.grad = None
    teacher_only = kl_divergence(torch.softmax(logits_p, 1).detach(), torch.softmax(logits_q, 1))
    teacher_only.backward()
    assert logits_p.grad is None
    gp_full, _ = grads(lambda p, q: symmetric_kl(p, q, detach_targets=False))
    assert not torch.allclose(gp_full, gp)


def test_kl_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        kl_divergence(torch.ones(2, 3) / 3, torch.ones(2, 4) / 4)
