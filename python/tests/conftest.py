# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures. Without PyTorch every test module skips itself (pytest.importorskip at its
top), so ``pytest python/tests`` is a fast no-op on machines without torch (e.g. the CPU CI)."""
import os

import pytest

try:
    import torch
except ImportError:  # each test module skips itself
    torch = None


def _cuda():
    if torch is None:
        return False
    try:
        import agoq
        return torch.cuda.is_available() and agoq.with_cuda
    except ImportError:
        return False


requires_cuda = pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU and a CUDA build of agoq")


@pytest.fixture(autouse=True)
def _seed():
    if torch is not None:
        torch.manual_seed(0)
    yield


def pytest_report_header(config):
    if torch is None:
        return "torch not installed: agoq's Python tests skip"
    try:
        import agoq
        return (f"agoq {agoq.__version__} (with_cuda={agoq.with_cuda}, has_nccl={agoq.has_nccl()}), "
                f"torch {torch.__version__}, cuda available={torch.cuda.is_available()}")
    except ImportError as e:
        return f"agoq not importable: {e}"


if os.environ.get("AGOQ_REQUIRE_GPU") == "1" and not _cuda():
    raise pytest.UsageError("AGOQ_REQUIRE_GPU=1 but no CUDA GPU / CUDA build of agoq is available")
