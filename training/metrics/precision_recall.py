"""Improved precision and recall (Kynkäänniemi et al. 2019) on k-nearest-neighbour manifolds.

Each set of features approximates its manifold by a union of balls: one per
sample, reaching to that sample's k-th nearest neighbour within its own set.

- precision: the fraction of generated samples inside the real manifold (are the
  fakes realistic?);
- recall: the fraction of real samples inside the generated manifold (does the
  generator cover the variety of the real data?).

Identical sets give precision = recall = 1; sets far apart give 0 and 0.

``per_class_precision_recall`` measures the same within each class of a labelled
set: class c's generated samples against class c's real ones, with the same k, so
that a class the generator covers poorly shows up even when the overall figure hides it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_K = 3  # the paper's choice


@dataclass
class PrecisionRecall:
    precision: float  # 0-1
    recall: float  # 0-1
    k: int

    def to_json(self) -> dict[str, float | int]:
        return {"precision": self.precision, "recall": self.recall, "k": self.k}


def _as_features(x: torch.Tensor, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty (N, D) feature matrix, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: features hold NaN or infinite values")
    return x.detach().to("cpu", torch.float32)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(M, D), (N, D) -> (M, N) squared Euclidean distances.

    By |a|² + |b|² - 2 a·b, one matrix product (float32: twice as fast as float64 on a
    CPU). Its round-off grows with the norms, not the distances, so the callers centre
    the features first: the cancellation error then stays about 1e-7 of the squared
    spread of the features, far below the distance between neighbours.
    """
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)  # (M, N)
    return d2.clamp_min_(0.0)  # cancellation can leave tiny negatives where a point meets itself


def knn_radii(features: torch.Tensor, k: int = DEFAULT_K, *, batch_size: int = 1024) -> torch.Tensor:
    """(N, D) -> (N,) squared distance from each sample to its k-th nearest other sample."""
    f = _as_features(features, "features")
    f = f - f.mean(dim=0)  # distances do not change; see _squared_distances
    if not 1 <= k < f.shape[0]:
        raise ValueError(f"k must be in 1..{f.shape[0] - 1} for {f.shape[0]} samples, got {k}")
    out = []
    for start in range(0, f.shape[0], batch_size):
        d2 = _squared_distances(f[start : start + batch_size], f)  # (b, N)
        # The k+1-th smallest, because the smallest is the sample itself (at distance 0).
        out.append(d2.kthvalue(k + 1, dim=1).values)  # (b,)
    return torch.cat(out)


def manifold_coverage(
    queries: torch.Tensor, reference: torch.Tensor, radii: torch.Tensor, *, batch_size: int = 1024
) -> float:
    """The fraction of (M, D) queries inside any ball around the (N, D) reference with (N,) squared radii."""
    q, ref = _as_features(queries, "queries"), _as_features(reference, "reference")
    if q.shape[1] != ref.shape[1]:
        raise ValueError(f"feature widths differ: {q.shape[1]} and {ref.shape[1]}")
    center = ref.mean(dim=0)  # one shift for both sets: distances do not change
    q, ref = q - center, ref - center
    r2 = torch.as_tensor(radii, dtype=torch.float32)
    if r2.shape != (ref.shape[0],):
        raise ValueError(f"expected {ref.shape[0]} radii, got {tuple(r2.shape)}")
    inside = 0
    for start in range(0, q.shape[0], batch_size):
        d2 = _squared_distances(q[start : start + batch_size], ref)  # (b, N)
        inside += int((d2 <= r2[None, :]).any(dim=1).sum())  # on the boundary counts as inside, as in the paper
    return inside / q.shape[0]


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, *, k: int = DEFAULT_K, batch_size: int = 1024
) -> PrecisionRecall:
    """Precision and recall of (M, D) generated features against (N, D) real features."""
    r, f = _as_features(real, "real features"), _as_features(fake, "generated features")
    precision = manifold_coverage(f, r, knn_radii(r, k, batch_size=batch_size), batch_size=batch_size)
    recall = manifold_coverage(r, f, knn_radii(f, k, batch_size=batch_size), batch_size=batch_size)
    return PrecisionRecall(precision, recall, k)


def per_class_precision_recall(
    real: torch.Tensor,
    real_labels: torch.Tensor,
    fake: torch.Tensor,
    fake_labels: torch.Tensor,
    num_classes: int,
    *,
    k: int = DEFAULT_K,
    batch_size: int = 1024,
) -> list[PrecisionRecall | None]:
    """Precision and recall within each class: (M, D) generated features of class c against (N, D) real of class c.

    Entry c is None where either side has k samples of class c or fewer (a k-NN radius needs k other samples).
    """
    real_labels, fake_labels = torch.as_tensor(real_labels).cpu(), torch.as_tensor(fake_labels).cpu()
    if real_labels.shape != (len(real),) or fake_labels.shape != (len(fake),):
        raise ValueError(
            f"expected one label per sample: {len(real)} real and {len(fake)} generated features, "
            f"labels of shape {tuple(real_labels.shape)} and {tuple(fake_labels.shape)}"
        )
    out: list[PrecisionRecall | None] = []
    for c in range(num_classes):
        r, f = real[real_labels == c], fake[fake_labels == c]  # (N_c, D), (M_c, D)
        too_few = min(len(r), len(f)) <= k
        out.append(None if too_few else precision_recall(r, f, k=k, batch_size=batch_size))
    return out
