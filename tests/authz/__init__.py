"""The authorisation matrix's cases: one module per area, each registering a case per operationId.

`load_all()` imports every module of the package, so a new area module is picked up without editing anything else.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "registry":
            importlib.import_module(f"{__name__}.{module.name}")
