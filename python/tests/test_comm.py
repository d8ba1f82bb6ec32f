# SPDX-License-Identifier: Apache-2.0
"""agoq's 8-bit all-reduce from PyTorch at world size 1 on one GPU: NcclComm, the DDP comm hook
and the gradient buffer's all-reduce. Skipped without CUDA or NCCL."""
import os
import tempfile

import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch")
agoq = pytest.importorskip("agoq", reason="agoq's extension is not built")
from conftest import requires_cuda  # noqa: E402

requires_nccl = pytest.mark.skipif(not agoq.has_nccl(), reason="agoq was built without NCCL")


@requires_cuda
@requires_nccl
def test_single_rank_allreduce():
    comm = agoq.NcclComm.single()
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(1 << 20 | 77, device="cuda", dtype=dtype)
        y = comm.allreduce_(x.clone())
        rel = ((y.float() - x.float()).norm() / x.float().norm()).item()
        assert 0 < rel < 1e-2, rel                  # quantized to INT8 on the wire
        assert torch.equal(comm.allreduce_(x.clone()), y)   # deterministic
    comm.close()


@requires_cuda
@requires_nccl
def test_ddp_comm_hook_world_size_1():
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    path = tempfile.mktemp()
    dist.init_process_group("nccl", init_method=f"file://{path}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(),
                                    torch.nn.Linear(512, 256)).cuda()
        ref = torch.nn.Sequential(*[m for m in model])  # same modules: reference grads first
        x = torch.randn(64, 256, device="cuda")
        ref(x).square().mean().backward()
        want = [p.grad.clone() for p in model.parameters()]
        model.zero_grad(set_to_none=True)
        ddp = DDP(model, device_ids=[torch.cuda.current_device()], bucket_cap_mb=1)
        ddp.register_comm_hook(agoq.AllreduceHookState(), agoq.allreduce_hook)
        ddp(x).square().mean().backward()
        torch.cuda.synchronize()
        for p, w in zip(model.parameters(), want):
            rel = ((p.grad - w).norm() / w.norm()).item()
            assert rel < 1e-2, rel
        # the grad buffer's all-reduce on the codes (world 1: a no-op by definition)
        gb = agoq.GradBuffer(model.parameters())
        gb.zero_grad()
        ddp.module(x).square().mean().backward()
        gb.accumulate()
        comm = agoq.NcclComm()
        gb.allreduce(comm)
        gb.to_grads()
        comm.close()
    finally:
        dist.destroy_process_group()
        if os.path.exists(path):
            os.remove(path)
