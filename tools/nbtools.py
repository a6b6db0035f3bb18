"""Repository checks and builds for blip_nb's notebooks: sync/clean check, README rendering, docs processing and site.

Used by `make test` (through tests/test_repo.py), `make sync`, `make readme` and `make docs`.
"""
from __future__ import annotations
import filecmp, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _snapshot(root: Path) -> dict[str, bytes]:
    "Contents of the files nbdev_clean / nbdev_export may change."
    files = list((root / "nbs").rglob("*.ipynb")) + list((root / "blip_nb").rglob("*.py"))
    return {str(f.relative_to(root)): f.read_bytes() for f in files if ".ipynb_checkpoints" not in f.parts}


def check_sync(root: Path = ROOT) -> list[str]:
    """Run `nbdev_clean` and `nbdev_export` on a copy of the repository; return the files they would change.

    An empty list means: notebooks are clean and the library is exactly what the notebooks export."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("settings.ini", "setup.py", "README.md", "_quarto.yml"):
            shutil.copy2(root / name, tmp / name)
        shutil.copytree(root / "nbs", tmp / "nbs", symlinks=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        shutil.copytree(root / "blip_nb", tmp / "blip_nb", ignore=shutil.ignore_patterns("__pycache__"))
        before = _snapshot(tmp)
        env = {k: v for k, v in os.environ.items() if k != "IN_TEST"}  # nbdev_export does nothing when IN_TEST is set
        for cmd in ("nbdev_clean", "nbdev_export"):
            r = subprocess.run([str(BIN / cmd)], cwd=tmp, capture_output=True, text=True, env=env)
            if r.returncode: raise RuntimeError(f"{cmd} failed:\n{r.stdout}\n{r.stderr}")
        after = _snapshot(tmp)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*(.*)$")


def _directives(source: str) -> tuple[dict[str, str], str]:
    "Split a code cell into its `#| key: value` directives and the remaining source."
    lines, d = source.splitlines(), {}
    while lines and _DIRECTIVE.match(lines[0]):
        body = _DIRECTIVE.match(lines.pop(0)).group(1).strip()
        key, _, val = body.partition(":") if ":" in body else body.partition(" ")
        d[key.strip()] = val.strip()
    return d, "\n".join(lines).strip("\n")


def _text_outputs(cell) -> list[str]:
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream" and o.get("name") == "stdout": out.append("".join(o["text"]))
        elif o.get("output_type") in ("execute_result", "display_data"):
            if "text/markdown" in o.get("data", {}): out.append(("md", "".join(o["data"]["text/markdown"])))
            elif "text/plain" in o.get("data", {}): out.append("".join(o["data"]["text/plain"]))
    return out


def render_readme(nb_path: Path = ROOT / "nbs" / "index.ipynb") -> str:
    "Markdown for README.md from the index notebook: prose, shown code, and text outputs (nbdev directives honoured)."
    nb = json.loads(Path(nb_path).read_text(encoding="utf-8"))
    parts = ["<!-- Generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file. -->"]
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown":  # images relative to nbs/ are relative to the repository root in README.md
            parts.append(re.sub(r"(!\[[^\]]*\]\()(?!https?:|/)([^)]+\))", r"\1nbs/\2", src.strip()))
            continue
        if cell["cell_type"] != "code": continue
        d, code = _directives(src)
        if {"hide", "export", "exporti", "default_exp"} & d.keys() or d.get("include") == "false": continue
        if code and d.get("echo") != "false": parts.append(f"```python\n{code}\n```")
        if d.get("output") == "false": continue
        for o in _text_outputs(cell):
            if isinstance(o, tuple): parts.append(o[1].strip())
            elif o.strip(): parts.append("```\n" + o.rstrip("\n") + "\n```")
    return "\n\n".join(parts) + "\n"


def write_readme(root: Path = ROOT) -> Path:
    p = root / "README.md"
    p.write_text(render_readme(root / "nbs" / "index.ipynb"), encoding="utf-8")
    return p


def process_docs(root: Path = ROOT) -> Path:
    "nbdev's docs processing (show_doc, directives, exec of doc cells) of every notebook into `_proc/`; no quarto needed."
    cwd = os.getcwd()
    os.chdir(root)
    try:
        from nbdev.config import get_config
        from nbdev.doclinks import _build_modidx
        from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
        from nbdev.serve import proc_nbs
        cfg = get_config()
        refresh_quarto_yml()
        _build_modidx()
        nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
        return Path(proc_nbs(cfg.nbs_path, force=True, n_workers=0))
    finally:
        os.chdir(cwd)
        _drop_shell_exit_hooks()


def _drop_shell_exit_hooks():
    """execnb leaves one IPython shell per processed notebook, each with an exit hook that clears its namespace and runs a
    full gc: 0.2 s each with torch loaded, 5 s at exit for 26 notebooks. Their history is off; nothing else needs them."""
    import atexit, gc
    try: from execnb.shell import CaptureShell
    except ImportError: return
    for o in gc.get_objects():
        if issubclass(type(o), CaptureShell): atexit.unregister(o.atexit_operations)  # type(): no proxy __class__ lookups


def html_docs(root: Path = ROOT, out: Path | None = None, proc: Path | None = None) -> list[Path]:
    """The offline docs site (tools/docs_site.py) in `out` (default settings.ini's doc_path, `_docs/`); returns its pages in order.

    `proc`: notebooks `process_docs` already processed (it is the slow part), else it runs here."""
    from nbdev.config import get_config
    from docs_site import build_site
    proc, cfg = Path(proc) if proc else process_docs(root), get_config(path=root)
    return build_site(proc, Path(out or cfg.doc_path), cfg, _directives)


def docs(root: Path = ROOT) -> str:
    "Build the docs: the Quarto site via nbdev_docs when quarto is on PATH, else the offline HTML rendering."
    if shutil.which("quarto"):
        subprocess.run([str(BIN / "nbdev_docs")], cwd=root, check=True)
        return f"built the Quarto site with nbdev_docs into {root / '_docs'}"
    pages = html_docs(root)
    return (f"quarto is not on PATH: built the offline site of {len(pages)} pages (sidebar, contents, search) "
            f"into {root / '_docs'}: open _docs/index.html; install quarto and re-run for the Quarto site")


def execute(nb_path: Path, skip_flags: tuple = ("slow", "cuda"), timeout: int = 3600) -> int:
    "Run a notebook in place (from nbs/, offline) skipping cells flagged `#| slow` / `#| cuda`: those keep their stored outputs."
    import nbformat
    from nbclient import NotebookClient
    nb_path = Path(nb_path).resolve()
    nb = nbformat.read(nb_path, as_version=4)
    skip = lambda c: c.cell_type == "code" and any(_directives(c.source)[0].get(f) is not None for f in skip_flags)
    kept = {i: c for i, c in enumerate(nb.cells) if skip(c)}
    run = nbformat.from_dict(dict(nb, cells=[c for i, c in enumerate(nb.cells) if i not in kept]))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    NotebookClient(run, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    it = iter(run.cells)
    nb.cells = [kept[i] if i in kept else next(it) for i in range(len(nb.cells))]
    nbformat.write(nb, nb_path)
    return len(kept)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "readme": print(f"wrote {write_readme()}")
    elif cmd == "docs": print(docs())
    elif cmd == "check":
        changed = check_sync()
        if changed: sys.exit("nbdev_clean / nbdev_export would change: " + ", ".join(changed))
        print("notebooks clean and library in sync")
    elif cmd == "run":
        for p in sys.argv[2:]: print(f"ran {p}: {execute(Path(p))} slow/cuda cell(s) kept as stored")
    elif cmd == "run-slow":  # benchmarks and real runs: every cell but `cuda` ones, outputs stored
        for p in sys.argv[2:]: print(f"ran {p} with its slow cells: {execute(Path(p), skip_flags=('cuda',))} cuda cell(s) kept")
    else: sys.exit("usage: python tools/nbtools.py readme|docs|check|run|run-slow NOTEBOOK...")
