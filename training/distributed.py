"""Data-parallel training under ``torchrun``: the process group, the batch slice of each rank, checkpoints.

``torchrun --nproc-per-node N -m elvmass train --distributed ...`` starts N processes; each joins the group
(gloo on CPU, NCCL when CUDA is present), builds the same folds and draws the same global batch order from
the same seed, and trains on its slice of every global batch: DistributedDataParallel averages the
gradients, and the loss is scaled so that the average equals the loss of the whole global batch. Every rank
scores the (small) validation set itself, so all ranks pick the same best epoch without a broadcast. Rank 0
writes the run and the checkpoints.

What is not identical to one process: BatchNorm statistics come from each rank's slice (SyncBatchNorm needs
GPUs; it is used with NCCL) and dropout masks are drawn per rank. docs/training.md states the measured
difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DistContext:
    """This process's place in the group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, n_global: int) -> slice:
        """This rank's positions in a global batch of ``n_global`` rows (every ``world_size``-th)."""
        return slice(self.rank, n_global, self.world_size)

    def wrap(self, model: Any) -> Any:
        """The model for training: DDP (with SyncBatchNorm on GPUs)."""
        import torch
        from torch.nn.parallel import DistributedDataParallel

        if self.device.startswith("cuda"):
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return DistributedDataParallel(model, device_ids=[self.local_rank])
        return DistributedDataParallel(model)

    def sync_buffers(self, model: Any) -> None:
        """Rank 0's BatchNorm running statistics on every rank, so that every rank validates the same model."""
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer, 0)

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def sum(self, value: float) -> float:
        """The sum of ``value`` over all ranks."""
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order, on every rank."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def init_distributed() -> DistContext:
    """Join the process group ``torchrun`` describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK...).

    Raises
    ------
    RuntimeError
        When not started by torchrun (no RANK / WORLD_SIZE in the environment).
    """
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError("--distributed needs torchrun: torchrun --nproc-per-node N -m elvmass train --distributed ...")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        backend, device = "nccl", f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    else:
        backend, device = "gloo", "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, backend, device)


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically (a crash mid-write leaves the previous checkpoint)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint at ``path``, or None when there is none."""
    import torch

    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
