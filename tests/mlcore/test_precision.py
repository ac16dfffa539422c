"""Choosing the decoder's matrix-product precision."""

import pytest

from mlcore import precision
from mlcore.precision import resolve_precision


def test_explicit_precisions_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("MLCORE_DECODER_PRECISION", "bfloat16")
    assert resolve_precision("float32") == "float32"
    assert resolve_precision("BFloat16") == "bfloat16"
    assert resolve_precision("auto") == "bfloat16"  # auto defers to the environment variable
    monkeypatch.setenv("MLCORE_DECODER_PRECISION", "float32")
    assert resolve_precision(None) == "float32"


def test_auto_follows_the_hardware(monkeypatch):
    monkeypatch.delenv("MLCORE_DECODER_PRECISION", raising=False)
    monkeypatch.setattr(precision, "native_bfloat16", lambda: True)
    assert resolve_precision() == "bfloat16"
    monkeypatch.setattr(precision, "native_bfloat16", lambda: False)
    assert resolve_precision() == "float32"


def test_unknown_precisions_are_refused_with_their_source(monkeypatch):
    with pytest.raises(ValueError, match="got 'float16'$"):
        resolve_precision("float16")
    monkeypatch.setenv("MLCORE_DECODER_PRECISION", "half")
    with pytest.raises(ValueError, match="MLCORE_DECODER_PRECISION"):
        resolve_precision()


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16\n")
    assert {"amx_bf16", "avx512f"} <= precision._cpu_flags(cpuinfo)
    assert precision._cpu_flags(tmp_path / "missing") == set()
