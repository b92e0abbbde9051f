"""Every kopf handler the operator registers; importing this package registers them all.

One module per concern. The Orchestration controller plugs in as ``podium.operator.orchestrations`` (or
``handlers.orchestrations``): it is imported here when present, so adding it needs no change elsewhere.
"""

from __future__ import annotations

import importlib
import importlib.util

from podium.operator.handlers import agents, indexes, lifecycle, teams

EXTENSIONS = ("podium.operator.handlers.orchestrations", "podium.operator.orchestrations")
loaded = [name for name in EXTENSIONS if importlib.util.find_spec(name) is not None]
for _name in loaded:
    importlib.import_module(_name)

__all__ = ["agents", "indexes", "lifecycle", "loaded", "teams"]
