"""Shared fixtures: hypothesis profiles, the ISA each test runs under, the shared model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import slmkernels as sk

# CI: derandomized so a run is reproducible; locally: random, a few more examples.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("dev", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# .ci/sanitize: the suite again under ASan + UBSan, ~3x slower; fewer examples per property
# keep that job short (the plain CI run before it draws the full 60).
settings.register_profile("sanitize", parent=settings.get_profile("ci"), max_examples=20)
# .ci/arm64-python: the smoke subset under qemu-aarch64 (20-50x slower than native)
settings.register_profile("qemu", parent=settings.get_profile("ci"), max_examples=8)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# (function_scoped_fixture: the `isa` fixture deliberately holds one ISA for all examples.)

# Every ISA the package knows (the ladder of csrc/core/isa.cpp), so a test per ISA shows up
# (and is skipped with a reason) even on a machine that cannot run it.
ALL_ISAS = [i["name"] for i in sk.isas()]
SUPPORTED_ISAS = sk.cpu_info()["supported_isas"]

MODEL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "models"
SMOLLM2 = MODEL_DIR / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(params=ALL_ISAS)
def isa(request):
    """Runs the test once per ISA, forcing that ISA's kernels; skips ISAs this CPU lacks."""
    name = request.param
    if name not in SUPPORTED_ISAS:
        pytest.skip(f"this CPU cannot run {name} (supported: {', '.join(SUPPORTED_ISAS)})")
    before = sk.get_isa()
    sk.set_isa(name)
    yield name
    sk.set_isa(before)


@pytest.fixture
def smollm2_path():
    if not SMOLLM2.exists():
        pytest.skip(f"model file not found at {SMOLLM2} (the tests look for ../shared/models beside the project)")
    return SMOLLM2
