"""Stage-1b tools: object features from AV maps, k-means pseudo-labels, prototypes, cluster ->
category matching (Hungarian) and NMI (method.md §1.4, §3.3).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

logger = logging.getLogger(__name__)

Array = np.ndarray | torch.Tensor


def dilate4(mask: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """4-neighbour binary dilation, ``steps`` times: (..., h, w) {0,1} -> same shape {0,1}."""
    out = mask
    for _ in range(steps):
        grown = out.clone()
        grown[..., 1:, :] = torch.maximum(grown[..., 1:, :], out[..., :-1, :])
        grown[..., :-1, :] = torch.maximum(grown[..., :-1, :], out[..., 1:, :])
        grown[..., :, 1:] = torch.maximum(grown[..., :, 1:], out[..., :, :-1])
        grown[..., :, :-1] = torch.maximum(grown[..., :, :-1], out[..., :, 1:])
        out = grown
    return out


def object_features(
    fv: torch.Tensor, av_map: torch.Tensor, *, threshold: float = 0.05, dilate: int = 1
) -> torch.Tensor:
    """DSOL object feature: mean over ALL cells of f^v masked by the dilated binarised AV map.

    o = (1 / hw) sum_xy f^v_xy * mask_xy, mask = dilate4(1[map > threshold], dilate).
    (DSOL's own dilation skips source cells on the image border; ours dilates every cell.)

    Args:
        fv: (B, D, h, w) visual features.
        av_map: (B, 1, h, w) or (B, h, w) AV map in [0, 1].
        threshold: Binarisation threshold on the map (DSOL: 0.05).
        dilate: Number of 1-pixel dilation steps.

    Returns:
        (B, D) object features (not normalised).
    """
    if av_map.ndim == 3:
        av_map = av_map.unsqueeze(1)
    if av_map.shape[0] != fv.shape[0] or av_map.shape[-2:] != fv.shape[-2:]:
        raise ValueError(f"av_map {tuple(av_map.shape)} does not match fv {tuple(fv.shape)}")
    mask = dilate4((av_map > threshold).to(fv.dtype), dilate)
    return (fv * mask).flatten(2).mean(dim=2)


def attended_object_features(
    features: torch.Tensor, av_map: torch.Tensor, *, temperature: float = 0.05
) -> torch.Tensor:
    """Object feature as the AV map's softmax attention over the cells (ours, docs/method.md):
    o = sum_xy softmax_xy(map / T) f_xy. Unlike DSOL's absolute mask, it follows the map's
    peak whatever its floor (a map whose every cell is above 0.05 masks nothing).

    Args:
        features: (B, C, h, w) features to pool.
        av_map: (B, 1, h, w) or (B, h, w) AV map in [0, 1].
        temperature: T; small T pools the peak cells only.

    Returns:
        (B, C) object features.
    """
    if av_map.ndim == 3:
        av_map = av_map.unsqueeze(1)
    if av_map.shape[0] != features.shape[0] or av_map.shape[-2:] != features.shape[-2:]:
        raise ValueError(
            f"av_map {tuple(av_map.shape)} does not match features {tuple(features.shape)}"
        )
    weights = torch.softmax(av_map.flatten(1) / temperature, dim=1)
    return torch.einsum("bn,bcn->bc", weights, features.flatten(2))


def _as_numpy(x: Array) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation of an (N, D) array (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def kmeans(features: Array, k: int, *, seed: int = 0, n_init: int = 10) -> tuple[Array, Array]:
    """k-means on L2-normalised features (sklearn, Lloyd).

    Args:
        features: (N, D) numpy array or tensor.
        k: Number of clusters K.
        seed: Random state.
        n_init: Restarts (the best inertia wins).

    Returns:
        labels (N,) int64 and centroids (K, D) float32 in the normalised space; tensors (labels
        long, on the input's device) if ``features`` is a tensor, else numpy arrays.
    """
    x = l2_normalize(_as_numpy(features).astype(np.float64))
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k-means needs 1 <= k <= N, got k={k}, N={x.shape[0]}")
    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)
    labels = model.labels_.astype(np.int64)
    centroids = model.cluster_centers_.astype(np.float32)
    if isinstance(features, torch.Tensor):
        device = features.device
        return torch.from_numpy(labels).to(device), torch.from_numpy(centroids).to(device)
    return labels, centroids


def cluster_means(
    features: Array, labels: Array, k: int, *, normalize: bool = True
) -> torch.Tensor:
    """Per-cluster mean of (optionally L2-normalised) features; empty clusters get a zero row.

    Args:
        features: (N, D).
        labels: (N,) cluster index in [0, k).
        k: Number of clusters.
        normalize: L2-normalise each feature before averaging.

    Returns:
        (K, D) float32 tensor (on the features' device when a tensor is given).
    """
    x = torch.as_tensor(features).float()
    y = torch.as_tensor(labels, device=x.device).long()
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(
            f"need features (N, D) and labels (N,), got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ValueError(f"labels must be in [0, {k})")
    if normalize:
        x = F.normalize(x, dim=1)
    sums = torch.zeros(k, x.shape[1], device=x.device).index_add_(0, y, x)
    counts = torch.bincount(y, minlength=k).clamp_min(1).to(x.dtype)
    empty = int((torch.bincount(y, minlength=k) == 0).sum())
    if empty:
        logger.warning("%d of %d clusters are empty; their prototypes are zero", empty, k)
    return sums / counts[:, None]


def audio_prototypes(fa: Array, labels: Array, k: int) -> torch.Tensor:
    """P^a_k = mean of L2-normalised f^a over clips with visual pseudo-label k (method.md Q3).

    Args:
        fa: (N, D) audio embeddings.
        labels: (N,) visual pseudo-labels in [0, k).
        k: Number of clusters.

    Returns:
        (K, D) tensor; a cluster without clips gets a zero row (its cosines are then 0).
    """
    return cluster_means(fa, labels, k, normalize=True)


def contingency(cluster_labels: Array, class_labels: Array, n_classes: int, k: int) -> np.ndarray:
    """(K, n_classes) counts of clips per (cluster, class) pair."""
    clusters = _as_numpy(cluster_labels).astype(np.int64).reshape(-1)
    classes = _as_numpy(class_labels).astype(np.int64).reshape(-1)
    if clusters.shape != classes.shape:
        raise ValueError(f"label arrays differ in length: {clusters.shape} vs {classes.shape}")
    if clusters.size and (clusters.min() < 0 or clusters.max() >= k):
        raise ValueError(f"cluster labels must be in [0, {k})")
    if classes.size and (classes.min() < 0 or classes.max() >= n_classes):
        raise ValueError(f"class labels must be in [0, {n_classes})")
    table = np.zeros((k, n_classes), dtype=np.int64)
    np.add.at(table, (clusters, classes), 1)
    return table


def match_clusters(
    cluster_labels: Array, class_labels: Array, n_classes: int, k: int
) -> np.ndarray:
    """Cluster -> category mapping from labelled clips (method.md §3.3).

    The score of (cluster j, class i) is the fraction of class-i clips that fall in cluster j
    (DSOL's ``match_cluster.py`` table). The Hungarian algorithm gives the one-to-one assignment
    maximising the total fraction: with K == n_classes every cluster gets a distinct class; with
    K > n_classes every class gets one cluster and each leftover cluster goes to its argmax class;
    with K < n_classes some classes get no cluster (their maps are zero).

    Args:
        cluster_labels: (N,) cluster index per clip in [0, k).
        class_labels: (N,) ground-truth class per clip in [0, n_classes).
        n_classes: Number of categories.
        k: Number of clusters.

    Returns:
        (K,) int64 category index per cluster.
    """
    table = contingency(cluster_labels, class_labels, n_classes, k).astype(np.float64)
    fractions = table / np.maximum(table.sum(axis=0, keepdims=True), 1.0)
    rows, cols = linear_sum_assignment(fractions, maximize=True)
    mapping = fractions.argmax(axis=1).astype(np.int64)  # leftover clusters: argmax class
    mapping[rows] = cols
    return mapping


def nmi(a: Array, b: Array) -> float:
    """Normalised mutual information between two labelings of the same N items (sklearn)."""
    return float(normalized_mutual_info_score(_as_numpy(a).reshape(-1), _as_numpy(b).reshape(-1)))
