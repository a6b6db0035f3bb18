"""What CI checks besides the notebooks: notebooks clean, library exported, README and docs build, the CLI installed."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
import nbtools

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_nbdev_clean_and_export_leave_no_diff():
    changed = nbtools.check_sync(ROOT)
    assert not changed, f"run `make sync`: nbdev_clean / nbdev_export would change {changed}"


def test_check_sync_detects_a_stale_library(tmp_path, monkeypatch):
    "The sync check itself can fail: a hand edit of an exported module is reported."
    import shutil
    for name in ("settings.ini", "setup.py", "README.md", "_quarto.yml"): shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs", symlinks=True)
    shutil.copytree(ROOT / "blip_nb", tmp_path / "blip_nb", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "blip_nb" / "config.py", "a") as f: f.write("\nHAND_EDIT = 1\n")
    assert nbtools.check_sync(tmp_path) == ["blip_nb/config.py"]


def test_readme_is_generated_from_index():
    assert (ROOT / "README.md").read_text(encoding="utf-8") == nbtools.render_readme(ROOT / "nbs" / "index.ipynb"), \
        "README.md is stale: run `make readme`"


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_notebook_processes_for_docs(processed_docs):
    proc = processed_docs
    names = {p.name for p in proc.glob("*.ipynb")}
    assert names == {p.name for p in (ROOT / "nbs").glob("*.ipynb")}
    idx = json.loads((proc / "01_tokenizer.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in idx["cells"])
    assert "get_tokenizer" in text and "#| export" not in text  # show_doc inserted, directives removed


def test_console_script_installed():
    exe = BIN / "blip_nb"
    r = subprocess.run([str(exe), "config", "tiny_blip2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config_class"] == "Blip2Config"
    r = subprocess.run([str(exe), "tokenize", "--vocab", "/missing/vocab.txt", "x"], capture_output=True, text=True)
    assert r.returncode == 1 and "not found" in r.stderr


@pytest.mark.skipif(not (ROOT / ".venv" / ".blip_nb-installed").exists(), reason="environment not made by `make setup`")
def test_setup_is_skipped_when_done():
    "A second `make test` must not reinstall: the setup stamp is newer than settings.ini and setup.py."
    r = subprocess.run(["make", "-q", "setup"], cwd=ROOT)
    assert r.returncode == 0, "make setup would run again"
