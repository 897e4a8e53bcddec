"""Loads the per-stroke reference implementation as the module ``gestures_reference``."""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "gestures_reference", Path(__file__).with_name("reference.py")
)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
sys.modules["gestures_reference"] = _module
_spec.loader.exec_module(_module)
