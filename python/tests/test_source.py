# SPDX-License-Identifier: Apache-2.0
"""Checks that need neither PyTorch nor a build (so the CPU CI, without torch, runs something):
every Python file of the package parses, and pyproject.toml names the build backend, package and
CMake options the README documents."""
import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_python_sources_parse():
    files = sorted(p for d in ("agoq", "tests", "examples") for p in (ROOT / d).glob("*.py"))
    assert len(files) >= 12
    for p in files:
        ast.parse(p.read_text(), filename=str(p))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11+")
def test_pyproject():
    import tomllib
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cfg["build-system"]["build-backend"] == "scikit_build_core.build"
    assert cfg["tool"]["scikit-build"]["wheel"]["packages"] == ["agoq"]
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for opt in ("AGOQ_TORCH_CUDA", "AGOQ_TORCH_NCCL", "CMAKE_CUDA_ARCHITECTURES"):
        assert opt in cmake
    for src in ("src/agoq_torch.cpp", "src/agoq_torch_cuda.cu", "src/agoq_torch_nccl.cu"):
        assert src in cmake and (ROOT / src).exists()
