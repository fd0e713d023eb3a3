import os
from pathlib import Path

import pytest

# upstream/conftest.py is the import shim for frizzle's own suite (test_upstream.py copies it
# beside those tests); it is not a conftest of this folder.
collect_ignore = ["upstream"]

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
REFERENCE = FIXTURES / "reference"
# The real APOGEE star (three apVisit files and the pipeline's apStar), beside the repository.
REAL_STAR = REPO.parent / "shared" / "data" / "apogee_2M00005143+5615568"


def need(condition: bool, what: str):
    """Skip when something optional is missing, except under CI=true, where it is a failure."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI")
    pytest.skip(what)
