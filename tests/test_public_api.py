"""The package's front door is explicit: ``__all__`` lists exactly its public names."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

import agentstream
import agentstream.llm
import agentstream.testing

DOCS = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = {
    "agentstream",
    "agentstream.llm",
    "agentstream.testing",
    "agentstream.formats",
    "agentstream.integrations",
}
PUBLIC_SUBMODULES = {
    "agentstream.integrations.pydantic_ai",
    "agentstream.integrations.openai_agents",
}


def test_all_lists_exactly_the_public_names_of_the_package():
    public = {
        name
        for name, value in vars(agentstream).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(agentstream.__all__) == public | {"__version__"}
    assert sorted(agentstream.__all__) == agentstream.__all__


def test_every_public_name_has_a_docstring():
    for name in agentstream.__all__:
        value = getattr(agentstream, name)
        if isinstance(value, type) or callable(value):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


@pytest.mark.parametrize("module", [agentstream.llm, agentstream.testing])
def test_the_stable_subpackages_list_their_public_names(module):
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith("agentstream")
    }
    assert set(module.__all__) <= defined
    assert sorted(module.__all__) == module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_the_docs_import_only_public_names():
    pages = [DOCS / "README.md", *sorted((DOCS / "docs").glob("*.md"))]
    imports = re.compile(r"^\s*from (agentstream[\w.]*) import ([\w, ()]+)", re.M)
    for page in pages:
        for module, names in imports.findall(page.read_text()):
            assert module in PUBLIC_MODULES, f"{page.name} imports from {module}"
            public = getattr(__import__(module, fromlist=["__all__"]), "__all__", [])
            for part in names.strip("()").split(","):
                name = part.split(" as ")[0].strip()
                submodule = f"{module}.{name}" in PUBLIC_SUBMODULES
                assert not name or name in public or submodule, (
                    f"{page.name}: {module}.{name} is not public"
                )
