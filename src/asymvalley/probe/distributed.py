"""Scale-out under ``torchrun`` (design §6).

Points are sharded round-robin across ranks (point ``i`` goes to rank
``i % world``); every rank holds a full copy of the model and the data and
evaluates its points exactly as a single process would (same batches, same
order, same arithmetic), and the per-point results are gathered with
``all_gather_object``. A point's numbers therefore do not depend on the number
of ranks: the output is bit-identical to one process.

``init_from_env()`` starts a process group when torchrun's environment
variables are set (gloo on CPU, nccl on CUDA) and is a no-op otherwise.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

from ..dist import barrier, init_from_env, is_main, rank_world

__all__ = ["init_from_env", "rank_world", "shard", "gather", "is_main", "barrier"]


def shard(indices: list[int]) -> list[int]:
    """This rank's share of point indices (round-robin on the point index itself)."""
    rank, world = rank_world()
    return [i for i in indices if i % world == rank]


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a plain picklable value), in rank order; ``[obj]`` without torchrun."""
    rank, world = rank_world()
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out
