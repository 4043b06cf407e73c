"""Shared fixtures: hypothesis profiles, the ISA each test runs under, the shared model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import slmkernels as sk
from slmkernels.model import files
from slmkernels.model.files import find_model

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

# The real model: $SLMK_MODEL_DIR or ../shared/models beside the checkout, size and sha256
# checked (slmkernels/model/files.py); (None, why) when it is missing or wrong.
SMOLLM2, SMOLLM2_MISSING = find_model(files.SMOLLM2, anchors=[Path(__file__).resolve().parents[1]])


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


@pytest.fixture(scope="session")
def smollm2_path():
    if SMOLLM2 is None:
        pytest.skip(SMOLLM2_MISSING)
    return SMOLLM2


# ---- the real-model tests: marked, and listed at the end when they were skipped ----
REAL_MODEL_FIXTURES = {"smollm2_path"}
_model_skips: list = []
_model_ran: list = []


def pytest_collection_modifyitems(items):
    for item in items:
        if REAL_MODEL_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.model)


def pytest_runtest_logreport(report):
    if "model" not in report.keywords:
        return
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _model_skips.append((report.nodeid, reason.removeprefix("Skipped: ")))
    elif report.when == "call":
        _model_ran.append(report.nodeid)


# A wrapper outside the terminal reporter's own (tryfirst): its code after the yield runs after
# pytest's short test summary, so this is the last thing before the counts.
@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    yield
    _report_model_tests(terminalreporter)


def _report_model_tests(terminalreporter):
    if not _model_skips and not _model_ran:
        return
    tr = terminalreporter
    tr.section("real-model tests")
    if _model_ran:
        tr.write_line(f"{len(_model_ran)} ran on {SMOLLM2}")
    by_reason: dict = {}
    for nodeid, reason in _model_skips:
        by_reason.setdefault(reason, []).append(nodeid)
    for reason, ids in by_reason.items():
        tr.write_line(f"{len(ids)} skipped: {reason}")
        for nodeid in ids:
            tr.write_line(f"    {nodeid}")
