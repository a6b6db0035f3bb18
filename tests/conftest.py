"Shared pytest set-up: offline hub, the tools/ helpers on sys.path, `--flags` to run flagged notebook cells, processed docs."
import os, sys
from pathlib import Path
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def pytest_addoption(parser):
    parser.addoption("--flags", default="", help="space-separated notebook flags to run (e.g. 'slow'), as nbdev_test --flags")


@pytest.fixture(scope="session")
def processed_docs():
    "nbdev's docs processing of every notebook into `_proc/` (about 10 s: it runs their show_doc cells), done once per session."
    import nbtools
    return nbtools.process_docs(ROOT)
