"""Array backends for the numerics: numpy on the CPU, or torch on any device.

A :class:`Backend` wraps the few array operations the solvers need (casts, products, eigen and QR
decompositions, reductions) so one code path runs on both libraries; nothing here is ridge-specific.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from brain_workbench.types import WorkbenchError


class Backend:
    """The array library and device a solver runs on: ``numpy`` (CPU) or ``torch`` (any device)."""

    def __init__(self, name: str = "numpy", device: str | None = None) -> None:
        if name not in ("numpy", "torch"):
            raise WorkbenchError(f"unknown backend {name!r}; use 'numpy' or 'torch'")
        self.name = name
        self.device: Any  # a torch.device on the torch backend, "cpu" on the numpy one
        if name == "numpy":
            if device not in (None, "cpu"):
                raise WorkbenchError(f"the numpy backend runs on the CPU only (got device={device!r}); "
                                     "use backend='torch' for other devices")
            self.device = "cpu"
            self.torch = None
        else:
            import torch

            self.torch = torch
            self.device = torch.device(device or "cpu")
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise WorkbenchError(f"device {device!r} was requested but CUDA is not available here; "
                                     "use device='cpu' or backend='numpy'")

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={str(self.device)!r})"

    def dtype(self, name: str) -> Any:
        return np.dtype(name) if self.torch is None else getattr(self.torch, str(np.dtype(name)))

    def asarray(self, x: Any, dtype: str) -> Any:
        if self.torch is None:
            return np.ascontiguousarray(x, dtype=dtype)
        t = self.torch
        if isinstance(x, t.Tensor):
            return x.to(device=self.device, dtype=self.dtype(dtype))
        return t.as_tensor(np.ascontiguousarray(x, dtype=dtype), device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        if self.torch is None:
            return np.asarray(x)
        return x.detach().cpu().numpy()

    def index(self, idx: np.ndarray) -> Any:
        if self.torch is None:
            return np.asarray(idx, dtype=np.intp)
        return self.torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        with self.serial_if_small(a.shape[0]):
            if self.torch is None:
                import scipy.linalg

                return scipy.linalg.eigh(a, check_finite=False)
            return self.torch.linalg.eigh(a)

    def qr(self, a: Any) -> tuple[Any, Any]:
        with self.serial_if_small(min(a.shape)):
            if self.torch is None:
                import scipy.linalg

                return scipy.linalg.qr(a, mode="economic", check_finite=False)
            return self.torch.linalg.qr(a)

    @contextmanager
    def serial_if_small(self, size: int, limit: int = 1024) -> Iterator[None]:
        """One CPU thread for small LAPACK calls: their many barriers stall badly on a busy machine."""
        if size > limit or (self.torch is not None and self.device.type != "cpu"):
            yield
        elif self.torch is None:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"):
                yield
        else:
            threads = self.torch.get_num_threads()
            self.torch.set_num_threads(1)
            try:
                yield
            finally:
                self.torch.set_num_threads(threads)

    def empty(self, shape: tuple[int, ...], dtype: str) -> Any:
        if self.torch is None:
            return np.empty(shape, dtype=dtype)
        return self.torch.empty(shape, dtype=self.dtype(dtype), device=self.device)

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        if self.torch is None:
            return np.matmul(a, b, out=out)
        return self.torch.matmul(a, b, out=out)

    def colsumsq(self, a: Any) -> np.ndarray:
        """Column sums of squares as float64 numpy (the one reduction every score needs)."""
        if self.torch is None:
            return np.einsum("ij,ij->j", a, a).astype(np.float64)
        return (a * a).sum(0).to(self.torch.float64).cpu().numpy()

    def concat(self, parts: Sequence[Any], axis: int) -> Any:
        return np.concatenate(parts, axis) if self.torch is None else self.torch.cat(list(parts), axis)

    @property
    def chunk_budget(self) -> int:
        """Bytes of working memory per chunk of units: 256 MiB on the CPU, 2 GiB on an accelerator,
        where bigger products keep the device busy."""
        return 2 ** 31 if self.torch is not None and self.device.type != "cpu" else 2 ** 28

    def sync(self) -> None:
        if self.torch is not None and self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)


def get_backend(backend: str | Backend = "numpy", device: str | None = None) -> Backend:
    """A :class:`Backend` from its name (``numpy`` or ``torch``) and device, or pass one through."""
    return backend if isinstance(backend, Backend) else Backend(backend, device)
