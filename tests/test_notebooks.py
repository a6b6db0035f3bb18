"""Every notebook is a test case: its cells run top to bottom (cells flagged in settings.ini `tst_flags` skipped)."""
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))


def test_notebooks_found():
    assert [p.name for p in NOTEBOOKS[:3]] == ["00_config.ipynb", "00a_errors.ipynb", "01_tokenizer.ipynb"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, request):
    skip = get_config(path=ROOT).tst_flags.split()
    force = request.config.getoption("--flags").split()
    ok, secs = run_notebook(nb, skip_flags=skip, force_flags=force, basepath=ROOT)
    assert ok, f"{nb.name} failed (traceback above, in the captured stderr)"
