"""The README tells the truth: its commands are what CI runs, and every setting is listed."""

from __future__ import annotations

import re

from pgqueue.settings import Settings, env_name
from tests.workers import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_with_its_variable_and_flag() -> None:
    for name in Settings.model_fields:
        assert f"`{env_name(name)}`" in README, name
        assert f"`--{name.replace('_', '-')}`" in README, name


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    test_command = next(block for block in blocks if "pytest" in block)
    assert test_command.strip() in (ROOT / ".ci" / "run").read_text()


def test_python_examples_compile_and_name_real_functions() -> None:
    import ast
    import importlib.util

    import pgqueue

    blocks = re.findall(r"```python\n(.*?)\n```", README, re.S)
    assert blocks
    for block in blocks:
        ast.parse(block)
        for name in re.findall(r"pgqueue\.(\w+)", block):
            # A name the package exports, or a module of it the example imports.
            assert name in pgqueue.__all__ or importlib.util.find_spec(f"pgqueue.{name}"), name


def test_linked_documents_exist() -> None:
    for link in re.findall(r"\]\(((?:docs|dashboards|bench)/[^)#]+)\)", README):
        assert (ROOT / link).exists(), link
