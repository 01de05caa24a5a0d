"""The package's front door is explicit: ``__all__`` lists exactly its public names."""

from __future__ import annotations

import types

import agentstream


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
