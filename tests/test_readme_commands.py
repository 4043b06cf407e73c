"""The README's two commands build the same way (so the second reuses the first one's compiled
core), and .ci/run runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def two_commands() -> list:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def test_both_commands_build_without_isolation_into_the_same_folder():
    install, test = two_commands()
    # With build isolation every install gets a new temporary build environment, and
    # scikit-build-core clears the CMake cache (and with it every object file) when its own path
    # changes: the second command would compile everything again.
    tools = "pip install scikit-build-core pybind11 cmake ninja && "
    assert install.startswith(tools + "pip install --no-build-isolation . && "), install
    assert test == tools + 'pip install --no-build-isolation ".[test]" && pytest', test
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^build-dir = "build/\{wheel_tag\}"$', pyproject, re.M)
    for req in re.search(r"^requires = \[(.*)\]$", pyproject, re.M).group(1).split(","):
        name = re.match(r'\s*"([A-Za-z0-9_-]+)', req).group(1)
        assert name in tools, f"build requirement {name} is not installed by the README's commands"


def test_ci_runs_the_readme_test_command():
    _, test = two_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test.replace("pip install", "python3 -m pip install") in ci
