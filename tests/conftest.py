"Shared pytest set-up: offline hub, the tools/ helpers on sys.path, and `--flags` to run flagged notebook cells."
import os, sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def pytest_addoption(parser):
    parser.addoption("--flags", default="", help="space-separated notebook flags to run (e.g. 'slow'), as nbdev_test --flags")
