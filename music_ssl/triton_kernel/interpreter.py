"""What the kernels need only under Triton's interpreter (CPU tensors, for tests): the releases whose
interpreter cannot run them, the fixed tiles it launches, and its split-reduction plan.

Nothing here changes what a GPU runs; `joint` and `availability` read it when `interpreter_active()`.
"""

from __future__ import annotations

from music_ssl.triton_kernel.versions import release

# tl.dot needs at least 16 per dimension; small tiles keep the interpreted tests fast.
BLOCK = 16
GROUP_M = 2
TILES = {"BLOCK_M": BLOCK, "BLOCK_N": BLOCK, "BLOCK_K": BLOCK}

# (target output tiles, smallest reduction chunk, tile side) for `planning.k_splits`: a GPU splits the
# reduction of products with fewer tiles than it has SMs; the interpreter, with 16 x 16 tiles, splits those
# with fewer than 8, so that the tests' small shapes exercise the split and the sum of partial products.
SPLIT_PLAN = (8, BLOCK, BLOCK)


def defect(triton_version: str, numpy_version: str) -> str:
    """Why Triton's interpreter cannot run these kernels with these versions (empty when it can).

    - Triton 3.0 (torch 2.4's) and 3.1: the interpreter does not pass constexpr arguments to tl.arange as
      constexpr ("arange's arguments must be of type tl.constexpr").
    - Triton before 3.7 with numpy >= 2.4: the interpreter turned loop bounds into ints with int() on
      one-element arrays, which numpy 2.4 refuses, so every kernel with a runtime loop bound fails
      (triton-lang/triton#9171, fixed in 3.7).
    """
    if release(triton_version) < (3, 2):
        return (
            f"Triton {triton_version}'s interpreter cannot run these kernels (it does not pass constexpr "
            "arguments as constexpr to tl.arange); install a newer triton to run them in the interpreter."
        )
    if release(triton_version) < (3, 7) and release(numpy_version) >= (2, 4):
        return (
            f"Triton {triton_version}'s interpreter cannot run kernels with loops under numpy "
            f"{numpy_version} (triton-lang/triton#9171); install triton >= 3.7 or numpy < 2.4."
        )
    return ""
