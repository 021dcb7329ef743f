"""The rank / world-size seam and the collectives the training step needs.

The loop asks this module (never Ray) who it is. Under Ray Train, TorchTrainer has already
called `init_process_group` (gloo on CPU, NCCL on GPU), so torch.distributed answers; in a
unit test nothing is initialised and everything degrades to a single process.

Gradient averaging is a manual flattened all-reduce after backward rather than DDP
("DDP or equivalent"): GAN training alternates D and G steps, freezes D during the
G step and runs G under no_grad for D's fake batch, which DDP's bucket hooks handle badly
(unused parameters, double-backward through the other network). One all-reduce per network
per step costs the same bytes as DDP's buckets without the overlap, which is fine here.
"""

from __future__ import annotations

import torch
import torch.distributed as torch_dist
from torch import nn


def is_distributed() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    return torch_dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return torch_dist.get_world_size() if is_distributed() else 1


def barrier() -> None:
    if is_distributed():
        torch_dist.barrier()


def broadcast_module_(module: nn.Module, src: int = 0) -> None:
    """Copy parameters and buffers of rank `src` into every rank (same start everywhere)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            torch_dist.broadcast(tensor.data, src=src)


def average_gradients_(module: nn.Module) -> None:
    """Average .grad of every parameter over ranks in one flattened all-reduce.

    Parameters without a gradient (e.g. frozen this step) are skipped consistently on every
    rank, because every rank runs the same code path with the same requires_grad flags.
    """
    if not is_distributed():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch_dist.all_reduce(flat, op=torch_dist.ReduceOp.SUM)
    flat.div_(world_size())
    # One foreach copy back instead of a slice, view and copy per tensor (~100 per network).
    chunks = flat.split([g.numel() for g in grads])
    torch._foreach_copy_(grads, [chunk.view_as(grad) for chunk, grad in zip(chunks, grads)])


def average_(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of `tensor` over ranks, in place (one all-reduce; a no-op in one process)."""
    if is_distributed():
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        tensor.div_(world_size())
    return tensor


def all_ranks_any(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every rank if `flag` is true on any rank (a collective stop decision)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_int(value: int, device: torch.device | str = "cpu", src: int = 0) -> int:
    """Rank `src`'s integer on every rank (a decision taken once, so ranks cannot disagree)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    torch_dist.broadcast(tensor, src=src)
    return int(tensor.item())


def all_gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every rank's `rows` (the same shape on each), stacked in rank order along dim 0."""
    if not is_distributed():
        return rows
    parts = [torch.empty_like(rows) for _ in range(world_size())]
    torch_dist.all_gather(parts, rows.contiguous())
    return torch.cat(parts)


def my_streams(streams: int, rank: int, world: int) -> list[int]:
    """The data streams rank `rank` of `world` reads: a contiguous block of streams / world, so the global
    batch is every stream's share in stream order whatever the world size (biggan.train.streams)."""
    if streams % world:
        raise ValueError(f"{streams} data streams cannot be shared out evenly over {world} workers")
    per_rank = streams // world
    return list(range(rank * per_rank, (rank + 1) * per_rank))


def micro_batch_size(global_batch: int, world: int, accumulation: int) -> int:
    """Per-worker micro-batch: global batch / (workers x accumulation), which must divide."""
    parts = world * accumulation
    if global_batch % parts != 0:
        raise ValueError(
            f"train.batch_size {global_batch} is not divisible by workers ({world}) x "
            f"train.accumulation ({accumulation}) = {parts}; pick a batch size that is a multiple of {parts}"
        )
    return global_batch // parts
