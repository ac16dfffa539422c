"""Which float type the decoder's matrix products use: float32, or bfloat16 where it is native.

Why: a decoding step is two matrix products per beam row (recurrent kernel, output projection),
and on hardware with bfloat16 matrix units (Intel AMX / AVX512-BF16, NVIDIA compute capability 8+)
those run 3-5x faster in bfloat16 than in float32. Elsewhere bfloat16 is emulated and slower, so
``"auto"`` only picks it where the hardware has it. The state and the word scores stay float32.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

PRECISIONS = ("auto", "float32", "bfloat16")
ENVIRONMENT_VARIABLE = "MLCORE_DECODER_PRECISION"
_CPU_BFLOAT16_FLAGS = {"amx_bf16", "avx512_bf16"}


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:  # not Linux: assume no native bfloat16
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@functools.lru_cache(maxsize=None)
def native_bfloat16() -> bool:
    """True when TensorFlow will run bfloat16 matrix products in hardware on this machine."""
    import tensorflow as tf  # lazy: TensorFlow start-up only when bfloat16 support is asked

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:  # ops land on the first GPU
        details = tf.config.experimental.get_device_details(gpus[0])
        return tuple(details.get("compute_capability") or (0, 0)) >= (8, 0)
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") == "0":  # oneDNN is what uses AMX / BF16
        return False
    return bool(_cpu_flags() & _CPU_BFLOAT16_FLAGS)


def requested_precision(precision: str | None = None) -> str:
    """The precision asked for, validated, before any hardware check: ``"auto"`` (or None) defers
    to ``$MLCORE_DECODER_PRECISION`` when it is set. Raises ValueError naming where a bad value
    came from; cheap (no TensorFlow), so start-up checks can call it."""
    requested = str(precision or "auto").lower()
    if requested == "auto":
        requested = os.environ.get(ENVIRONMENT_VARIABLE, "auto").lower() or "auto"
    if requested not in PRECISIONS:
        source = f" (from ${ENVIRONMENT_VARIABLE})" if precision in (None, "auto") else ""
        raise ValueError(f"decoder precision must be one of {', '.join(PRECISIONS)}; "
                         f"got {requested!r}{source}")
    return requested


def resolve_precision(precision: str | None = None) -> str:
    """``"auto"`` (or None) → ``$MLCORE_DECODER_PRECISION`` if set, else what the hardware runs best."""
    requested = requested_precision(precision)
    if requested == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return requested
