"""Stage-1b tools: object features, k-means, prototypes, cluster matching and NMI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ier.clustering import (
    audio_prototypes,
    contingency,
    dilate4,
    kmeans,
    match_clusters,
    nmi,
    object_features,
)


def test_dilate4_grows_a_cross_and_clips_at_the_border() -> None:
    mask = torch.zeros(4, 4)
    mask[1, 1] = 1
    grown = dilate4(mask)
    expected = torch.zeros(4, 4)
    expected[1, 1] = expected[0, 1] = expected[2, 1] = expected[1, 0] = expected[1, 2] = 1
    assert torch.equal(grown, expected)
    corner = torch.zeros(3, 3)
    corner[0, 0] = 1
    assert dilate4(corner).sum() == 3
    assert dilate4(corner, steps=2).sum() == 6
    assert torch.equal(dilate4(corner, steps=0), corner)


def test_object_features_on_hand_built_map() -> None:
    fv = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4).repeat(1, 2, 1, 1)
    fv[0, 1] = 1.0
    av_map = torch.full((1, 1, 4, 4), 0.01)
    av_map[0, 0, 1, 1] = 0.9  # above 0.05: the cross around (1,1) = cells 1, 4, 5, 6, 9
    feats = object_features(fv, av_map, threshold=0.05, dilate=1)
    assert feats.shape == (1, 2)
    # mean over ALL 16 cells, masked cells keep their value
    assert feats[0, 0].item() == pytest.approx((1 + 4 + 5 + 6 + 9) / 16)
    assert feats[0, 1].item() == pytest.approx(5 / 16)
    no_dilation = object_features(fv, av_map[:, 0], dilate=0)
    assert no_dilation[0, 0].item() == pytest.approx(5 / 16)
    assert object_features(fv, torch.zeros(1, 1, 4, 4)).abs().sum() == 0
    with pytest.raises(ValueError, match="does not match"):
        object_features(fv, torch.zeros(1, 1, 3, 3))


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.eye(3, 8) * 5
    labels = np.repeat(np.arange(3), 20)
    return centers[labels] + 0.1 * rng.standard_normal((60, 8)), labels


def test_kmeans_recovers_well_separated_clusters_numpy_and_torch() -> None:
    features, truth = _blobs()
    labels, centroids = kmeans(features, 3, seed=0, n_init=3)
    assert labels.shape == (60,) and centroids.shape == (3, 8)
    assert nmi(labels, truth) == pytest.approx(1.0)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-2)
    labels_t, centroids_t = kmeans(torch.from_numpy(features), 3, seed=0, n_init=3)
    assert isinstance(labels_t, torch.Tensor) and labels_t.dtype == torch.long
    assert centroids_t.shape == (3, 8)
    assert nmi(labels_t, truth) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k <= N"):
        kmeans(features[:2], 3)


def test_audio_prototypes_average_normalised_features_and_zero_empty_clusters() -> None:
    fa = torch.tensor([[3.0, 0.0], [0.0, 5.0], [2.0, 0.0]])
    labels = torch.tensor([0, 0, 2])
    protos = audio_prototypes(fa, labels, 3)
    torch.testing.assert_close(protos, torch.tensor([[0.5, 0.5], [0.0, 0.0], [1.0, 0.0]]))
    protos_np = audio_prototypes(fa.numpy(), labels.numpy(), 3)
    torch.testing.assert_close(protos_np, protos)
    with pytest.raises(ValueError, match="labels must be"):
        audio_prototypes(fa, torch.tensor([0, 1, 3]), 3)


def test_match_clusters_recovers_a_permutation() -> None:
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 5, size=200)
    perm = np.array([3, 0, 4, 1, 2])  # class i -> cluster perm[i]
    clusters = perm[classes]
    noisy = clusters.copy()
    noisy[:15] = rng.integers(0, 5, size=15)
    for labels in (clusters, noisy):
        mapping = match_clusters(labels, classes, n_classes=5, k=5)
        np.testing.assert_array_equal(mapping[perm], np.arange(5))


def test_match_clusters_with_more_clusters_than_classes() -> None:
    classes = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    clusters = np.array([0, 0, 3, 3, 1, 1, 1, 1, 2, 2])  # class 0 split over clusters 0 and 3
    mapping = match_clusters(clusters, classes, n_classes=3, k=4)
    np.testing.assert_array_equal(mapping, [0, 1, 2, 0])
    assert set(mapping) == {0, 1, 2}  # every class gets at least one cluster


def test_contingency_counts_and_nmi() -> None:
    table = contingency([0, 0, 1, 1, 1], [1, 1, 0, 0, 1], n_classes=2, k=2)
    np.testing.assert_array_equal(table, [[0, 2], [2, 1]])
    assert nmi([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert nmi([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="class labels"):
        contingency([0], [5], n_classes=2, k=2)


def test_attended_object_features_follow_the_maps_peak() -> None:
    from ier.clustering import attended_object_features

    features = torch.zeros(1, 2, 2, 2)
    features[0, 0, 0, 0], features[0, 1, 1, 1] = 4.0, 8.0
    av_map = torch.full((1, 1, 2, 2), 0.6)  # a floor far above DSOL's 0.05 mask
    av_map[0, 0, 0, 0] = 0.9
    sharp = attended_object_features(features, av_map, temperature=0.01)
    torch.testing.assert_close(sharp, torch.tensor([[4.0, 0.0]]), atol=1e-4, rtol=0)
    flat = attended_object_features(features, av_map, temperature=100.0)  # ~ the plain mean
    torch.testing.assert_close(flat, torch.tensor([[1.0, 2.0]]), atol=2e-2, rtol=0)
    masked = object_features(features, av_map)  # DSOL: every cell above 0.05 -> the mean
    torch.testing.assert_close(masked, torch.tensor([[1.0, 2.0]]))
