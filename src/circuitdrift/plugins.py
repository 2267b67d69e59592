"""Plug-ins: modules that register models, tasks and default probe sets by name.

The lower layers (:mod:`circuitdrift.models.registry`, :mod:`circuitdrift.tasks.registry`)
know no model or task by name: plug-ins fill their registries when imported.
The built-in ones are listed here (the real-model tasks, the organism); other
packages add theirs under the ``circuitdrift.plugins`` entry-point group
(``[project.entry-points."circuitdrift.plugins"] mine = "my_package.plugin"``).

Plug-ins are imported on first use, not with ``import circuitdrift``, so
importing the package stays free of side effects, and a registry never imports
the code it registers at module level (the organism uses the registries, not
the other way round).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

BUILTIN_PLUGINS = ("circuitdrift.tasks.table", "circuitdrift.organism.plugin")
ENTRY_POINT_GROUP = "circuitdrift.plugins"
_loaded = False


def load_plugins() -> None:
    """Import every plug-in once; a built-in one missing from this installation is skipped."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in BUILTIN_PLUGINS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()
