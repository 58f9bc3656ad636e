"""A GPU that is not there, for Triton's host code: a driver that reports an sm_90 device, and a compiler
that records the on-disk cache key of every kernel it is asked for instead of compiling it.

Under it the Triton loss's host code runs on CPU tensors exactly as on a GPU (specialization, autotuning,
the chunks and split reductions) up to the point where a kernel would be compiled; launches do nothing.
So two pieces of host code can be compared by the kernels they would make Triton compile, which is what a
GPU's cache holds. Run it in a fresh process with TRITON_INTERPRET unset (the kernels are jitted for the
GPU at their import). Only Triton's compiler front end is used: no GPU, no ptxas run.
"""

from __future__ import annotations

import torch

# Default compilation target: what an H100 reports.
SM_90 = ("cuda", 90, 32)


class _NoKernel:
    """What the recording compiler returns: a launch of it does nothing."""

    function = None
    packed_metadata = None

    def launch_metadata(self, *args):
        return None

    def run(self, *args):
        return None


class FakeGPU:
    """Installs the fake driver and the recording compiler (`install`); ``keys`` collects the cache key of
    every kernel compiled since, as (kernel name, key)."""

    def __init__(self, target: tuple[str, int, int] = SM_90) -> None:
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget(*target)
        self.keys: list[tuple[str, str]] = []

    # The driver: one device, stream 0, a benchmarker that runs the call once and calls it 1 ms.
    def get_current_target(self):
        return self.target

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device=None) -> int:
        return 0

    def get_benchmarker(self):
        def bench(call, quantiles=None, **_):
            call()
            return [1.0, 1.0, 1.0] if quantiles else 1.0

        return bench

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")

    def compile(self, src, target=None, options=None, _env_vars=None):
        """triton.compile's key for ``src`` (what names its entry in the on-disk cache), recorded."""
        from triton._C.libtriton import get_cache_invalidating_env_vars
        from triton.compiler.compiler import get_cache_key, make_backend

        backend = make_backend(target or self.target)
        parsed = backend.parse_options(dict(options or {}, **src.parse_options()))
        self.keys.append((src.name, get_cache_key(src, backend, parsed, get_cache_invalidating_env_vars())))
        return _NoKernel()

    def install(self) -> FakeGPU:
        """This process's Triton compiles and launches through the fake from now on; the Triton loss's
        host code takes CPU tensors for this GPU's (availability, TF32 hardware, 132 SMs as an H100)."""
        import triton
        import triton.compiler
        from triton.runtime.driver import driver

        from music_ssl import triton_kernel
        from music_ssl.triton_kernel import availability, joint

        driver.set_active(self)
        triton.compile = triton.compiler.compile = self.compile
        availability.unavailable_reason = triton_kernel.unavailable_reason = lambda device: ""
        joint.has_tf32 = lambda device: True
        joint.multiprocessors = lambda device: 132
        return self

    @staticmethod
    def forget_compiled() -> None:
        """Empties the kernels' in-memory caches (compiled kernels, autotuning's choices), as a new process
        starts: the next launch asks the compiler again."""
        from music_ssl.triton_kernel import kernels

        for kernel in (kernels.joint_chunk_kernel, kernels.scaled_matmul_kernel):
            kernel.fn.device_caches.clear()
            kernel.cache.clear()
