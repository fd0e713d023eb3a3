"""Import shim: runs frizzle 0.2.8's own test suite, unchanged, against frizzview's drop-in.

Copied beside the upstream ``tests/`` folder of the frizzle 0.2.8 sdist (fetched at test time,
never committed) by ``test_upstream.py``; before collection it maps ``frizzle`` and
``frizzle.utils`` to ``frizzview.compat`` and loads upstream's own synthetic-data helpers
(``src/frizzle/test_utils.py`` of the sdist, plain numpy/scipy) as ``frizzle.test_utils``.
"""

import importlib.util
import os
import sys

import frizzview.compat
import frizzview.compat.utils

sys.modules["frizzle"] = frizzview.compat
sys.modules["frizzle.utils"] = frizzview.compat.utils

_here = os.path.dirname(os.path.abspath(__file__))
_path = os.path.join(_here, "..", "src", "frizzle", "test_utils.py")
_spec = importlib.util.spec_from_file_location("frizzle.test_utils", _path)
_mod = importlib.util.module_from_spec(_spec)
sys.modules["frizzle.test_utils"] = _mod
_spec.loader.exec_module(_mod)
