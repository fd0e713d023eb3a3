"""frizzle 0.2.8's own test suite (its sdist's tests/), unchanged, against the drop-in.

The sdist is fetched at test time with pip (or taken from $FRIZZLE_SDIST, a .tar.gz), unpacked
into a temporary folder, and run with the import shim in ``upstream/conftest.py``. It needs jax
(the tests build their inputs with ``jax.numpy``) and scipy (upstream's ``test_utils.py``).
"""

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import need

HERE = Path(__file__).resolve().parent
VERSION = "0.2.8"


def _sdist(tmp: Path) -> Path:
    given = os.environ.get("FRIZZLE_SDIST")
    if given:
        return Path(given)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         f"frizzle=={VERSION}", "-d", str(tmp), "-q"],
        capture_output=True, text=True,
    )
    found = sorted(tmp.glob(f"frizzle-{VERSION}.tar.gz"))
    need(r.returncode == 0 and bool(found), f"the frizzle {VERSION} sdist (pip download failed: {r.stderr.strip()[-300:]})")
    return found[0]


def test_frizzle_0_2_8_suite_passes_against_the_drop_in(tmp_path):
    try:
        import jax  # noqa: F401
        import scipy  # noqa: F401
    except ImportError as e:
        need(False, f"jax and scipy for frizzle's own tests ({e})")
    sdist = _sdist(tmp_path)
    with tarfile.open(sdist) as t:
        t.extractall(tmp_path, filter="data")
    root = tmp_path / f"frizzle-{VERSION}"
    tests = root / "tests"
    names = sorted(p.name for p in tests.glob("test_*.py"))
    assert names == ["test_frizzle.py", "test_synthetic.py", "test_utils.py"], names
    shutil.copy(HERE / "upstream" / "conftest.py", tests / "conftest.py")
    env = dict(os.environ, JAX_ENABLE_X64="1")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tests)],
        cwd=root, capture_output=True, text=True, env=env,
    )
    print(r.stdout[-6000:])
    print(r.stderr[-2000:])
    assert r.returncode == 0, "frizzle's own tests failed against frizzview.compat"
    m = re.search(r"(\d+) passed", r.stdout)
    assert m and int(m.group(1)) == 44, "expected the 44 upstream tests to run and pass"
    assert "failed" not in r.stdout.splitlines()[-1] and "skipped" not in r.stdout.splitlines()[-1]
