"""Class-wise nearest neighbours of a fixed set of queries among a stream of bank images, with a
running top-k per query: memory grows with the queries, never with the bank (the training set,
1.28M images for ImageNet, is read chunk by chunk).

Per chunk and block of queries, candidate distances come from matrix products
(||q||^2 + ||b||^2 - 2 q.b, on the GPU when there is one); the best `k + margin` candidates per
query are then re-measured exactly as ||q - b|| and merged into the running top-k. A copy of a
training image therefore reports distance 0 exactly, not the rounding error of the product.
Features may be stored compactly (uint8 pixels): they are converted to float per block and
multiplied by `scale`.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MARGIN = 8  # extra candidates re-measured exactly, so rounding in the products cannot drop a true neighbour
_BLOCK_BYTES = 1 << 27  # bound on each block's float working set (128 MiB)


class NeighbourSearch:
    """Running class-wise k-NN of `queries` over bank chunks given in order."""

    def __init__(
        self,
        queries: Tensor,  # [Q, d] features on the search device (any dtype; uint8 pixels are fine)
        query_labels: Tensor,  # [Q] int64 on the search device
        k: int,  # neighbours kept per query
        scale: float = 1.0,  # feature units: distances are of `scale * features`
        keep_images: int = 0,  # the first `keep_images` queries also keep their neighbours' images (grids)
    ):
        self.queries = queries
        self.labels = query_labels
        self.k = k
        self.scale = scale
        q, d = queries.shape
        # Queries per block: the float64 [block, k + margin, d] differences dominate the working set.
        self.block = max(1, _BLOCK_BYTES // (8 * max(d, 1) * (k + _MARGIN + 1)))
        self.sq = torch.cat([self._rows(start).pow(2).sum(1) for start in range(0, q, self.block)]) if q else \
            torch.empty(0, device=queries.device)
        self.distances = torch.full((q, k), float("inf"), device=queries.device, dtype=torch.float64)
        self.indices = torch.full((q, k), -1, device=queries.device, dtype=torch.int64)
        self.keep_images = min(keep_images, q)
        self.images: Tensor | None = None  # [keep_images, k, 3, H, W] uint8 on the CPU
        self.seen = 0  # bank items consumed so far (global index of the next chunk's first item)

    def _rows(self, start: int) -> Tensor:
        return self.queries[start:start + self.block].float() * self.scale

    @torch.no_grad()
    def update(self, bank: Tensor, bank_labels: Tensor, bank_images: Tensor | None = None) -> None:
        """Merge one chunk: features [C, d] and labels [C] on the queries' device, and the chunk's
        uint8 images (CPU) when grids are kept."""
        c = bank.shape[0]
        if c == 0:
            return
        bank = bank.float() * self.scale
        bank_sq = bank.pow(2).sum(1)
        take = min(self.k + _MARGIN, c)
        dists, cands = [], []
        for start in range(0, self.queries.shape[0], self.block):
            stop = start + self.block
            rows = self._rows(start)
            approx = self.sq[start:stop, None] + bank_sq[None, :] - 2.0 * (rows @ bank.T)
            approx.masked_fill_(self.labels[start:stop, None] != bank_labels[None, :], float("inf"))
            cand_approx, cand = approx.topk(take, dim=1, largest=False)
            # Only candidates that could beat a query's current k-th neighbour are measured
            # exactly; once the top-k has filled, most chunks measure almost nothing. The slack
            # covers the products' rounding (relative to the squared norms involved).
            kth = self.distances[start:stop, -1:].float()
            slack = 1e-4 * (self.sq[start:stop, None] + bank_sq[cand]) + 1e-6
            worth = torch.isfinite(cand_approx) & (cand_approx <= kth * kth + slack)
            exact = torch.full(cand.shape, float("inf"), dtype=torch.float64, device=cand.device)
            q_idx, j_idx = worth.nonzero(as_tuple=True)
            for piece in range(0, q_idx.numel(), self.block * 8):
                qi, ji = q_idx[piece:piece + self.block * 8], j_idx[piece:piece + self.block * 8]
                diff = rows[qi].double() - bank[cand[qi, ji]].double()
                exact[qi, ji] = diff.norm(dim=1)
            dists.append(exact)
            cands.append(cand)
        cand = torch.cat(cands)
        distances = torch.cat([self.distances, torch.cat(dists)], dim=1)
        indices = torch.cat([self.indices, cand + self.seen], dim=1)
        best, order = distances.topk(self.k, dim=1, largest=False)
        if self.keep_images and bank_images is not None:
            self._merge_images(order, cand, bank_images)
        self.distances, self.indices = best, torch.where(torch.isinf(best), -1, indices.gather(1, order))
        self.seen += c

    def _merge_images(self, order: Tensor, cand: Tensor, bank_images: Tensor) -> None:
        n = self.keep_images
        chunk = bank_images[cand[:n].cpu()]  # [n, take, 3, H, W]
        if self.images is None:
            self.images = torch.zeros((n, self.k, *bank_images.shape[1:]), dtype=torch.uint8)
        pool = torch.cat([self.images, chunk], dim=1)
        self.images = pool[torch.arange(n)[:, None], order[:n].cpu()]

    def result(self) -> tuple[Tensor, Tensor]:
        """(distances [Q, k] float64, bank indices [Q, k]; +inf / -1 where a class has fewer items)."""
        return self.distances.cpu(), self.indices.cpu()


def brute_force_neighbours(query: Tensor, query_labels: Tensor, bank: Tensor, bank_labels: Tensor,
                           k: int) -> tuple[Tensor, Tensor]:
    """The same answer from all pairwise distances at once (small sets only; tests compare)."""
    distances = torch.full((query.shape[0], k), float("inf"), dtype=torch.float64)
    indices = torch.full((query.shape[0], k), -1, dtype=torch.int64)
    for label in query_labels.unique().tolist():
        q_idx = (query_labels == label).nonzero().flatten()
        b_idx = (bank_labels == label).nonzero().flatten()
        if b_idx.numel() == 0:
            continue
        d = (query[q_idx].double()[:, None, :] - bank[b_idx].double()[None]).norm(dim=2)
        kk = min(k, b_idx.numel())
        top_d, top_i = d.topk(kk, dim=1, largest=False)
        distances[q_idx, :kk] = top_d
        indices[q_idx, :kk] = b_idx[top_i]
    return distances, indices
