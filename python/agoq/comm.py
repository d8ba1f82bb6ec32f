# SPDX-License-Identifier: Apache-2.0
"""agoq's 8-bit all-reduce (comm/allreduce.cuh: INT8 wire, block 128, fp32 accumulation, every rank
bitwise identical) for PyTorch: an NCCL communicator built from a process group, and a DDP
communication hook.

    import torch.distributed as dist, agoq
    dist.init_process_group("nccl")
    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank])
    model.register_comm_hook(agoq.AllreduceHookState(), agoq.allreduce_hook)

The communicator is agoq's own (agoq never builds a transport: it is an ncclComm_t made with
ncclCommInitRank); its unique id travels through the process group's store, so every rank must
create its ``NcclComm`` (or hook state) in the same order, like any collective.
"""
from __future__ import annotations

import itertools
from typing import Dict, Optional

import torch

from . import _C

_ids = itertools.count()


class NcclComm:
    """An NCCL communicator over the ranks of ``group`` (default: the world), on ``device``
    (default: the current CUDA device). ``NcclComm.single()`` makes a world of one without
    torch.distributed."""

    def __init__(self, group=None, device: Optional[torch.device] = None, *, _single: bool = False):
        if not _C.has_nccl():
            raise RuntimeError("agoq.NcclComm: this build of agoq has no NCCL (AGOQ_TORCH_NCCL=OFF, "
                               "NCCL not found, or a CPU-only build)")
        self.device = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
        n = next(_ids)
        if _single:
            self.rank, self.size = 0, 1
            uid = _C.nccl_unique_id()
        else:
            import torch.distributed as dist
            from torch.distributed import distributed_c10d as c10d

            group = group or dist.group.WORLD
            self.rank, self.size = dist.get_rank(group), dist.get_world_size(group)
            store = c10d._get_default_store()
            name = getattr(group, "group_name", "world")
            key = f"agoq/nccl_unique_id/{name}/{n}"
            if self.rank == 0:
                uid = _C.nccl_unique_id()
                store.set(key, uid)
            else:
                uid = bytes(store.get(key))
        self.handle = _C.nccl_comm_init(self.size, self.rank, uid, self.device.index or 0)

    @classmethod
    def single(cls, device: Optional[torch.device] = None) -> "NcclComm":
        return cls(device=device, _single=True)

    def allreduce_(self, t: torch.Tensor, average: bool = True, algo: str = "auto",
                   workspace: Optional[torch.Tensor] = None) -> torch.Tensor:
        """In place: t := the 8-bit all-reduced sum (or average) of t over the ranks, on the current
        stream. ``workspace``: a uint8 tensor of >= workspace_size(...) bytes (allocated if None)."""
        if workspace is None:
            workspace = torch.empty(max(self.workspace_size(t.numel(), t.dtype, average, algo), 16),
                                    dtype=torch.uint8, device=t.device)
        _C.allreduce_(self.handle, t, workspace, average, algo, 0)
        return t

    def workspace_size(self, count: int, dtype: torch.dtype, average: bool = True,
                       algo: str = "auto") -> int:
        return _C.allreduce_workspace_size(self.handle, count, str(dtype).replace("torch.", ""),
                                           average, algo, 0)

    def close(self) -> None:
        if getattr(self, "handle", 0):
            _C.nccl_comm_destroy(self.handle)
            self.handle = 0

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class AllreduceHookState:
    """State of ``allreduce_hook``: the communicator (made now, from ``process_group``) and one
    workspace per bucket size and dtype."""

    def __init__(self, process_group=None, algo: str = "auto", comm: Optional[NcclComm] = None):
        self.process_group = process_group
        self.algo = algo
        self.comm = comm if comm is not None else NcclComm(process_group)
        self._ws: Dict[tuple, torch.Tensor] = {}

    def workspace(self, t: torch.Tensor) -> torch.Tensor:
        key = (t.numel(), t.dtype, t.device)
        ws = self._ws.get(key)
        if ws is None:
            n = self.comm.workspace_size(t.numel(), t.dtype, True, self.algo)
            ws = self._ws[key] = torch.empty(max(n, 16), dtype=torch.uint8, device=t.device)
        return ws


def allreduce_hook(state: AllreduceHookState, bucket):
    """DDP communication hook: averages the bucket with agoq's 8-bit all-reduce, in place, on the
    current CUDA stream (DDP's own divide-by-world-size is not applied on top)."""
    t = bucket.buffer()
    _C.allreduce_(state.comm.handle, t, state.workspace(t), True, state.algo, 0)
    fut = torch.futures.Future(devices=[t.device])
    fut.set_result(t)
    return fut


# DDP compares the return annotation with the Future[Tensor] object itself; under
# `from __future__ import annotations` a written annotation would be a string, and refused.
allreduce_hook.__annotations__["return"] = torch.futures.Future[torch.Tensor]
