"""The offline docs site (`make docs` without quarto, tools/docs_site.py): every link, image and anchor resolves, the
sidebar and the search index cover every notebook, no link to the unpublished repository; and `_quarto.yml` still has
what `nbdev_docs` needs where quarto exists."""
import json, re, shutil, subprocess, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote
import pytest, yaml
from nbdev.config import get_config
import nbtools

ROOT = Path(__file__).resolve().parents[1]
CFG = get_config(path=ROOT)
HEADINGS = {"h2", "h3", "h4", "h5", "h6"}


class Page(HTMLParser):
    "What the tests need from a page: ids, href/src references, headings, and the sidebar's and contents' links."
    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.ids, self.refs, self.heads, self.side, self.toc, self.current = set(), [], [], [], [], []
        self._head, self._box = None, None  # the heading being read; "side"/"toc" while inside that <details>
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a: self.ids.add(a["id"])
        self.refs += [a[k] for k in ("href", "src") if a.get(k) is not None]
        if tag == "details": self._box = (a.get("class") or "").split(" ")[0]
        if tag in HEADINGS and self._box is None and "id" in a: self._head = [tag, a["id"], ""]
        if tag == "a" and self._box in ("side", "toc"):
            getattr(self, self._box).append(a["href"])
            if a.get("aria-current") == "page": self.current.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "details": self._box = None
        if tag in HEADINGS and self._head: self.heads.append(tuple(self._head)); self._head = None

    def handle_data(self, data):
        if self._head: self._head[2] += data


@pytest.fixture(scope="module")
def site(processed_docs, tmp_path_factory):
    "The site built once from the session's processed notebooks: its folder, pages in sidebar order, parsed pages."
    out = tmp_path_factory.mktemp("site") / "_docs"
    t = time.perf_counter()
    order = nbtools.html_docs(ROOT, out, proc=processed_docs)
    secs = time.perf_counter() - t
    print(f"\nrendered {len(order)} pages in {secs:.1f} s; search index {(out / 'search_index.js').stat().st_size / 1e3:.0f} kB")
    assert secs < 30, f"rendering the site took {secs:.0f} s"
    return out, [p.name for p in order], {p.name: Page(p.read_text(encoding="utf-8")) for p in out.glob("*.html")}


def sidebar_notebooks():
    "sidebar.yml's notebooks in order (nbdev writes it from nbs/; sections flattened)."
    def walk(items):
        for e in items:
            if isinstance(e, str): yield e
            else:
                if e.get("href"): yield e["href"]
                yield from walk(e.get("contents", []))
    return list(walk(yaml.safe_load((ROOT / "nbs" / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]))


def test_sidebar_yml_lists_every_notebook(processed_docs):
    listed = sidebar_notebooks()
    assert sorted(listed) == sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_"))
    assert listed[0] == "index.ipynb" and len(set(listed)) == len(listed)


def test_sidebar_in_notebook_order_on_every_page(site, processed_docs):
    import nbformat
    from docs_site import front_matter, page_file
    _, order, pages = site
    files = [page_file(Path(n), front_matter(nbformat.read(processed_docs / n, as_version=4))) for n in sidebar_notebooks()]
    assert order == files and len(pages) == len(files)
    for name, p in pages.items():
        assert p.side == files, name
        assert p.current == [name], f"{name}: the current page is not marked (or more than one is)"


def test_sidebar_sections():
    "Sections of sidebar.yml (nbdev writes one per notebook folder) nest, in order; an `href` makes the title a link."
    from docs_site import _nav, sidebar_items
    pages = {f"{n}.ipynb": dict(title=n.title(), file=f"{n}.html") for n in ("index", "a", "b", "c")}
    items = sidebar_items(["index.ipynb", {"section": "Part", "href": "a.ipynb", "contents": ["b.ipynb", "c.ipynb"]}], pages)
    assert items == [("Index", "index.html", []), ("Part", "a.html", [("B", "b.html", []), ("C", "c.html", [])])]
    nav = Page(_nav(items, "b.html"))
    assert nav.refs == ["index.html", "a.html", "b.html", "c.html"]
    assert '<li class="section"><a href="a.html">Part</a><ul><li><a href="b.html" class="current"' in _nav(items, "b.html")


def test_every_link_image_and_anchor_resolves(site):
    out, _, pages = site
    bad = []
    for name, p in pages.items():
        for ref in p.refs:
            if re.match(r"(data|mailto):", ref): continue
            if re.match(r"https?://", ref):  # external links are fine, but not to the site or repository that do not exist
                if ref.startswith((CFG.git_url, CFG.doc_host)): bad.append((name, ref))
                continue
            path, _, anchor = ref.partition("#")
            target = (out / unquote(path)).resolve() if path else out / name
            if not target.is_file() or out.resolve() not in target.parents: bad.append((name, ref)); continue
            if anchor and (target.suffix != ".html" or anchor not in pages[target.name].ids): bad.append((name, ref))
    assert not bad, f"{len(bad)} broken references, e.g. {bad[:10]}"


def test_front_page_gallery_is_copied(site):
    out, _, pages = site
    assert "images/gallery.png" in pages["index.html"].refs and (out / "images" / "gallery.png").is_file()


def test_contents_list_the_pages_h2_and_h3(site):
    _, _, pages = site
    from docs_site import pandoc_id
    for name, p in pages.items(): assert p.toc == ["#" + i for tag, i, _ in p.heads if tag in ("h2", "h3")], name
    assert pandoc_id("Text in, defined behaviour out") == "text-in-defined-behaviour-out"  # as pandoc: what links use
    assert {"#text-in-defined-behaviour-out", "#check_text"} <= set(pages["tokenizer.html"].toc)


def test_search_index_holds_every_pages_headings(site):
    out, _, pages = site
    js = (out / "search_index.js").read_text(encoding="utf-8")
    index = {e["u"]: e for e in json.loads(re.fullmatch(r"window\.SEARCH_INDEX = (.*);\s*", js, re.S)[1])}
    assert index.keys() == pages.keys()
    for name, p in pages.items():
        e = index[name]
        assert e["t"] and e["x"], name
        assert [tuple(h) for h in e["h"]] == [(i, t.strip()) for _, i, t in p.heads], name
    assert "WordPiece" in index["tokenizer.html"]["x"]


def test_no_source_links_to_the_unpublished_repository(site, processed_docs):
    out, _, _ = site
    assert CFG.git_url in (processed_docs / "01_tokenizer.ipynb").read_text()  # show_doc did write them...
    for page in out.glob("*.html"):  # ...and no page links there, nor to the doc site that does not exist
        text = page.read_text(encoding="utf-8")
        assert CFG.git_url not in text and CFG.doc_host not in text and ">source</a>" not in text, page.name


def test_quarto_yml_has_what_nbdev_docs_needs(processed_docs):
    "Where quarto exists `make docs` runs nbdev_docs: it renders _proc/ as a quarto website with the yml files nbdev writes."
    from nbdev.quarto import _quarto_yml
    ours, nbdevs = yaml.safe_load((ROOT / "_quarto.yml").read_text()), yaml.safe_load(_quarto_yml)
    assert (ROOT / "nbs" / "_quarto.yml").resolve() == (ROOT / "_quarto.yml").resolve()  # proc_nbs copies nbs/_quarto.yml
    def keys(d, pre=()): return {k for a, v in d.items() for k in ([pre + (a,)] + (sorted(keys(v, pre + (a,))) if isinstance(v, dict) else []))}
    # all of nbdev's own template but the "report an issue" action: the repository is not published (see settings.ini git_url)
    assert keys(nbdevs) - keys(ours) == {("website", "repo-actions")}
    assert ours["project"]["type"] == "website" and "output-dir" not in ours["project"]  # nbdev.yml sets it to doc_path
    assert {"nbdev.yml", "sidebar.yml"} <= set(ours["metadata-files"]) and "sidebar" in ours["website"]
    assert (ROOT / "nbs" / ours["format"]["html"]["css"]).is_file()
    assert str(CFG.get("custom_quarto_yml", "True")).lower() not in ("false", "0", "no"), "refresh_quarto_yml would replace it"
    written = yaml.safe_load((ROOT / "nbs" / "nbdev.yml").read_text())  # what refresh_quarto_yml wrote during processing
    assert written["project"]["output-dir"] == CFG.doc_path.name and written["website"]["title"] == CFG.title


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium not installed")
def test_search_finds_pages_in_a_browser(site):
    "The search runs from file:// (no fetch): ?q= fills the box and lists pages, headings linked."
    out, _, _ = site
    r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                        (out / "index.html").as_uri() + "?q=swap_tokenizer"], capture_output=True, text=True, timeout=60)
    results = re.search(r'<section id="results">(.*?)</section>', r.stdout, re.S)
    assert results, r.stdout[-2000:] + r.stderr[-2000:]
    assert 'href="tokenizer.html#swap_tokenizer"' in results[1] and "<mark>" in results[1]
