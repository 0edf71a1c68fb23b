"""Process-group plumbing shared by training and probing under ``torchrun`` (design §6).

``init_from_env`` starts the default process group when torchrun's variables
are set (gloo on CPU, nccl on CUDA) and does nothing otherwise, so the same
command line runs with one process or K.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["init_from_env", "rank_world", "is_main", "barrier", "all_reduce_sum", "finalize"]


def init_from_env(device: str = "cpu") -> bool:
    """Initialise the default process group from torchrun's env vars; True if more than one process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return False
    backend = "nccl" if str(device).startswith("cuda") and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_world()[0] == 0


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (in place; identity with one process)."""
    if rank_world()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def finalize() -> None:
    """Leave the process group cleanly: wait for every rank, then destroy the group.

    Without this, a rank that exits first can make a peer's gloo thread abort
    (SIGABRT on a closed connection) while that peer is still shutting down.
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
