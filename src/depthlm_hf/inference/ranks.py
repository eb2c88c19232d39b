"""The ranks of a launched run: `accelerate launch` and `torchrun` start one process per GPU (or CPU slot) and tell
each its place through the environment (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`).

`launched_ranks()` reads that place and, with more than one process, joins the process group through
`torch.distributed` (NCCL on GPUs, gloo on CPU); without a launcher it is the one-process run. Work is split by
`Ranks.shard` (item `k` goes to rank `k mod world_size`), ranks meet at `Ranks.barrier`, and rank 0 writes what
is shared. We use `torch.distributed` directly rather than accelerate's state object: evaluation needs only
ranks and a barrier, and accelerate's CPU state is non-distributed unless told `use_cpu` (see the docs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch

T = TypeVar("T")

BARRIER_TIMEOUT = timedelta(hours=12)
"""How long a rank waits for the others: a resumed rank may have far less left to do than its neighbours."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among `world_size` processes; `local_rank` numbers the processes of one node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size or not 0 <= self.local_rank < self.world_size:
            raise ValueError(
                f"`rank` and `local_rank` must lie in [0, world_size), got rank={self.rank}, "
                f"local_rank={self.local_rank}, world_size={self.world_size}."
            )

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that merges results and writes shared files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """The items of this rank: item `k` belongs to rank `k mod world_size`.

        >>> Ranks(1, 3).shard(list("abcdefg"))
        ['b', 'e']
        """
        return list(items[self.rank :: self.world_size])

    def device(self) -> str:
        """`cuda:LOCAL_RANK` when CUDA is available (one GPU per process), else `cpu`."""
        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"

    def barrier(self) -> None:
        """Wait until every rank arrives (no-op for one process)."""
        if self.distributed:
            torch.distributed.barrier()

    def name(self) -> str:
        """`rank{r}-of-{w}`, used in per-rank file names.

        >>> Ranks(1, 2).name()
        'rank1-of-2'
        """
        return f"rank{self.rank}-of-{self.world_size}"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if not value.lstrip("-").isdigit():
        raise ValueError(f"The environment variable `{name}` must be an integer, got {value!r}.")
    return int(value)


def ranks_from_env() -> Ranks:
    """This process's `Ranks` from `RANK`, `WORLD_SIZE` and `LOCAL_RANK` (a one-process run without them)."""
    world = _env_int("WORLD_SIZE", 1)
    if world < 1:
        raise ValueError(f"The environment variable `WORLD_SIZE` must be >= 1, got {world}.")
    rank = _env_int("RANK", 0)
    return Ranks(rank, world, _env_int("LOCAL_RANK", rank))


@contextmanager
def launched_ranks() -> Iterator[Ranks]:
    """The launcher's ranks, with the process group joined for the block and destroyed after it.

    A group that the caller (or accelerate) already set up is used and left alone.
    """
    ranks = ranks_from_env()
    own = ranks.distributed and not torch.distributed.is_initialized()
    if own:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(ranks.local_rank)
        torch.distributed.init_process_group(backend, timeout=BARRIER_TIMEOUT)
    try:
        yield ranks
    finally:
        if own:
            torch.distributed.destroy_process_group()
