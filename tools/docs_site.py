"""The offline docs site: nbdev's processed notebooks (`_proc/`) as static HTML pages with a sidebar in notebook order,
a per-page table of contents and a client-side search. No quarto, no network: it opens from file://.

`build_site` is what `tools/nbtools.py docs` (`make docs`) runs when quarto is not installed."""
from __future__ import annotations
import html, json, re, shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
_BLOCK = re.compile(r"</?(?:p|div|li|h[1-6]|pre|br|hr|tr|td|th|table|ul|ol|blockquote|details|summary)\b[^>]*>", re.I)
_TAGS, _WS = re.compile(r"<[^>]+>"), re.compile(r"\s+")
_ATTRS = re.compile(r"\{(?:target|style|\.)[^{}]*\}")  # pandoc attribute blocks nbdev writes after links: {target="_blank" ...}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_WIDGET = "application/vnd.jupyter.widget-view+json"
_CODE_LINK = re.compile(r"\[(`[^`\n]+`)\]\([^)\s]+\)")  # nbdev links `names` even in a signature's comments, in a code block


def text_of(fragment: str) -> str:
    "Plain text of an HTML fragment: block tags become spaces, inline ones (code, pygments' spans) nothing; whitespace collapsed."
    return _WS.sub(" ", html.unescape(_TAGS.sub("", _BLOCK.sub(" ", fragment)))).strip()


def pandoc_id(text: str) -> str:
    "The identifier pandoc (so quarto) gives a heading, which nbdev's doc links (`page.html#symbol`) point at."
    s = "".join(c for c in text.lower() if c.isalnum() or c in "_-. ")
    s = re.sub(r"^[^a-z\u00c0-\uffff]+", "", "-".join(s.split()))  # ids start at the first letter
    return s or "section"


def front_matter(nb) -> dict:
    "The YAML front matter nbdev puts in the first raw cell (title, description, output-file)."
    import yaml
    for c in nb.cells:
        if c.cell_type == "raw" and c.source.startswith("---"): return yaml.safe_load(c.source.strip().strip("-")) or {}
    return {}


def page_file(nb_path: Path, meta: dict) -> str:
    "The page a notebook becomes: its `output-file`, else nbdev's own name for it (the one its doc links use)."
    from nbdev.doclinks import _nbpath2html
    return meta.get("output-file") or _nbpath2html(Path(nb_path.name)).name


def _md_renderer():
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class Renderer(IPythonRenderer):
        "Headings get pandoc ids (unique per page) and are collected; links go through `self.link_to`; TeX stays TeX."
        def __init__(self, link_to):
            super().__init__(escape=False, exclude_anchor_links=True)
            self.link_to, self.heads, self.ids = link_to, [], set()
        def heading(self, text, level, **attrs):
            plain = text_of(text)
            base = hid = pandoc_id(plain)
            n = 0
            while hid in self.ids: n += 1; hid = f"{base}-{n}"  # as pandoc numbers repeated headings
            self.ids.add(hid)
            self.heads.append((level, hid, plain))
            return f'<h{level} id="{hid}">{text}<a class="anchor" href="#{hid}" aria-label="link to this section"></a></h{level}>\n'
        def link(self, text, url, title=None):
            url = self.link_to(url)
            if url is None: return "" if text_of(text) == "source" else text  # show_doc's [source] link: dropped
            return super().link(text, url, title)
        def block_code(self, code, info=None): return super().block_code(_CODE_LINK.sub(r"\1", code), info)
        def inline_math(self, body): return f'<span class="math">{super().inline_math(body)}</span>'
        def block_math(self, body): return f'<div class="math">{super().block_math(body)}</div>'

    def make(link_to):
        r = Renderer(link_to)
        md = MarkdownWithMath(renderer=r)
        return r, lambda src: md.render(_ATTRS.sub("", src))
    return make


def _linker(cfg, pages: dict[str, str]):
    "Map a link: the (unpublished) doc site to the local page, `x.ipynb` to its page, the (nonexistent) repo to None."
    site = (cfg["doc_host"].rstrip("/") + "/" + cfg["doc_baseurl"].strip("/")).rstrip("/") + "/"
    repo = re.compile(re.escape(cfg["git_url"].rstrip("/")) + r"(?:[/#?.]|$)") if cfg.get("git_url") else None
    def link_to(url: str):
        if url.startswith(site): url = url[len(site):] or "index.html"
        elif repo and repo.match(url): return None
        m = re.match(r"(?:\./)?([^/#?:]+\.ipynb)(#.*)?$", url)
        return pages[m[1]] + (m[2] or "") if m and m[1] in pages else url
    return link_to


def _code(src: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    return highlight(src, PythonLexer(), HtmlFormatter())


def _output(o, md) -> tuple[str, str]:
    "One output as HTML, and the text it adds to the search index (markdown outputs only: show_doc's signatures, docs)."
    t, d = o.get("output_type"), o.get("data", {})
    if t == "stream": return f'<pre class="out {o.get("name", "")}">{html.escape(_ANSI.sub("", o.get("text", "")))}</pre>', ""
    if t == "error": return f'<pre class="out error">{html.escape(_ANSI.sub("", chr(10).join(o.get("traceback", []))))}</pre>', ""
    if _WIDGET in d: return '<p class="out note">(an interactive widget: run the notebook to use it)</p>', ""
    for k in ("image/png", "image/jpeg", "image/gif"):
        if k in d: return f'<img class="out" alt="output image" src="data:{k};base64,{"".join(d[k]).strip()}">', ""
    if "image/svg+xml" in d: return f'<div class="out">{"".join(d["image/svg+xml"])}</div>', ""
    if "text/html" in d: return f'<div class="out html">{"".join(d["text/html"])}</div>', ""
    if "text/markdown" in d:
        h = md("".join(d["text/markdown"]))
        return f'<div class="out md">{h}</div>', text_of(h)
    if "text/plain" in d: return f'<pre class="out">{html.escape(_ANSI.sub("", "".join(d["text/plain"])))}</pre>', ""
    return "", ""


def _merge_streams(outputs) -> list:
    "Consecutive prints to one stream as one block, as Jupyter shows them."
    out = []
    for o in outputs:
        if out and o.get("output_type") == "stream" == out[-1].get("output_type") and o.get("name") == out[-1].get("name"):
            out[-1] = dict(out[-1], text=out[-1]["text"] + o["text"])
        else: out.append(o)
    return out


def render_notebook(nb, md, directives) -> tuple[str, list[str]]:
    "A processed notebook's body HTML (front matter left out) and its searchable text pieces."
    body, text = [], []
    for c in nb.cells:
        if c.cell_type == "markdown":
            h = md(c.source)
            body.append(f'<div class="cell md">{h}</div>'); text.append(text_of(h))
        elif c.cell_type == "code":
            d, src = directives(c.source)
            if d.get("include") == "false": continue
            parts = []
            if src and d.get("echo") != "false":
                code = _code(src)
                if "code-fold" in d:  # nbdev's "Exported source" blocks: folded as quarto folds them
                    summary = html.escape(d.get("code-summary", "Code").strip("\"'"))
                    code = f'<details class="fold"{" open" if d["code-fold"] == "show" else ""}><summary>{summary}</summary>{code}</details>'
                parts.append(code)
            if d.get("output") != "false":
                for o in _merge_streams(c.get("outputs", [])):
                    h, t = _output(o, md)
                    parts.append(h); text.append(t)
            if any(parts): body.append(f'<div class="cell code{" sd" if c.get("has_sd") else ""}">{"".join(parts)}</div>')
    return "\n".join(body), text


_LOCAL_ANCHOR = re.compile(r'href="([^":/#]*\.html)?#([^"]+)"')

def fix_anchors(body: str, page: str, ids: dict[str, set]) -> str:
    """nbdev links every exported name, also methods and helpers without a show_doc section of their own:
    point those at the enclosing section (`Class.method` -> `Class`), else at the page."""
    def fix(m):
        f, a = m[1] or page, m[2]
        if f not in ids or a in ids[f]: return m[0]  # not one of our pages, or the anchor is there
        while "." in a and a not in ids[f]: a = a.rsplit(".", 1)[0]
        return f'href="{f}#{a}"' if a in ids[f] else f'href="{f}"'
    return _LOCAL_ANCHOR.sub(fix, body)


def sidebar_items(contents, pages: dict) -> list:
    "sidebar.yml's `contents` as (title, href, children) in its order; sections have children, notebooks a page."
    out = []
    for e in contents or []:
        if isinstance(e, str): e = {"href": e}
        if "section" in e: out.append((e["section"], pages.get(e.get("href"), {}).get("file"), sidebar_items(e.get("contents"), pages)))
        elif e.get("href") in pages: p = pages[e["href"]]; out.append((e.get("text") or p["title"], p["file"], []))
    return out


def _flat(items): return [x for t, f, ch in items for x in ([(t, f)] if f else []) + _flat(ch)]


def _nav(items, current: str) -> str:
    lis = []
    for title, f, ch in items:
        cur = ' class="current" aria-current="page"' if f == current else ""
        label = f'<a href="{f}"{cur}>{html.escape(title)}</a>' if f else f'<span>{html.escape(title)}</span>'
        sec = ' class="section"' if ch else ""
        lis.append(f'<li{sec}>{label}{_nav(ch, current) if ch else ""}</li>')
    return f'<ul>{"".join(lis)}</ul>'


def _toc(heads) -> str:
    "h2 entries with their h3s nested."
    out, open_sub = [], False
    for level, hid, text in heads:
        if level not in (2, 3): continue
        a = f'<a href="#{hid}">{html.escape(text)}</a>'
        if level == 3 and out:
            out.append(("" if open_sub else "<ul>") + f"<li>{a}</li>"); open_sub = True
        else:
            if open_sub: out.append("</ul>"); open_sub = False
            out.append(("</li>" if out else "") + f"<li>{a}")
    if not out: return ""
    return "<ul>" + "".join(out) + ("</ul>" if open_sub else "") + "</li></ul>"


def _page(site_title, p, nav_items, prev_next) -> str:
    e = html.escape
    toc = _toc(p["heads"])
    toc = f'<details class="toc" open><summary>On this page</summary>{toc}</details>' if toc else ""
    pn = "".join(f'<a class="{k}" href="{f}">{e(t)}</a>' for k, (t, f) in zip(("prev", "next"), prev_next) if f)
    desc = f'<p class="description">{p["desc"]}</p>' if p["desc"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(p["title"])} – {e(site_title)}</title>
<link rel="stylesheet" href="site.css">
<script src="search_index.js" defer></script><script src="site.js" defer></script>
</head><body>
<header class="top"><a class="brand" href="index.html">{e(site_title)}</a>
<form class="search" role="search" action="{p["file"]}"><input id="q" name="q" type="search" placeholder="Search the docs" aria-label="Search the docs" autocomplete="off"></form></header>
<div class="layout">
<details class="side" open><summary>Pages</summary><nav aria-label="Notebooks">{_nav(nav_items, p["file"])}</nav></details>
{toc}
<main id="main"><section id="results" hidden></section>
<article><h1 class="title">{e(p["title"])}</h1>{desc}
{p["body"]}
</article><nav class="pager">{pn}</nav></main>
</div>
<footer>Offline rendering of the notebooks (quarto not installed): built by <code>make docs</code>.</footer>
</body></html>
"""


def build_site(proc: Path, out: Path, cfg, directives) -> list[Path]:
    """Render every notebook in `proc` (nbdev's `_proc/`) into `out`, with the site's assets; return the pages in sidebar order.

    `cfg`: nbdev's config (title, doc_host, doc_baseurl, git_url); `directives`: splits a cell into `#|` options and code."""
    import nbformat, yaml
    from pygments.formatters import HtmlFormatter
    proc, out = Path(proc), Path(out)
    shutil.rmtree(out, ignore_errors=True)
    # images and other files the notebooks reference, at the same relative paths (nbdev copied them into _proc)
    shutil.copytree(proc, out, ignore=shutil.ignore_patterns("*.ipynb", "*.yml", "*.css", ".*", "_*"))
    nbs = {p.name: nbformat.read(p, as_version=4) for p in sorted(proc.glob("*.ipynb"))}
    pages = {}
    for name, nb in nbs.items():
        meta = front_matter(nb)
        pages[name] = dict(title=str(meta.get("title") or Path(name).stem), file=page_file(Path(name), meta), desc=meta.get("description"))
    link_to, make_md = _linker(cfg, {k: v["file"] for k, v in pages.items()}), _md_renderer()
    for name, nb in nbs.items():
        r, md = make_md(link_to)
        p = pages[name]
        if p["desc"]: p["desc"] = re.sub(r"^<p>|</p>\s*$", "", md(str(p["desc"])).strip())
        r.heads.clear()  # the description is not a section
        p["body"], p["text"] = render_notebook(nb, md, directives)
        p["heads"] = r.heads
    ids = {p["file"]: set(re.findall(r'\sid="([^"]+)"', p["body"])) for p in pages.values()}
    for p in pages.values(): p["body"] = fix_anchors(p["body"], p["file"], ids)
    sb = proc / "sidebar.yml"
    contents = (yaml.safe_load(sb.read_text()) or {}).get("website", {}).get("sidebar", {}).get("contents") if sb.exists() else None
    items = sidebar_items(contents or sorted(nbs, key=lambda n: (n != "index.ipynb", n)), pages)
    order, by_file = _flat(items), {p["file"]: p for p in pages.values()}
    order += [(p["title"], f) for f, p in by_file.items() if f not in {f for _, f in order}]  # not in sidebar.yml: rendered too
    for i, (_, f) in enumerate(order):
        p = by_file[f]
        prev_next = (order[i - 1] if i else (None, None), order[i + 1] if i + 1 < len(order) else (None, None))
        (out / f).write_text(_page(cfg["title"], p, items, prev_next), encoding="utf-8")
    index = [dict(u=p["file"], t=p["title"], h=[[hid, t] for _, hid, t in p["heads"]], x=" ".join(t for t in p["text"] if t))
             for p in pages.values()]
    # a script assigning a global, not JSON to fetch(): browsers refuse fetch() on file:// pages
    (out / "search_index.js").write_text("window.SEARCH_INDEX = " + json.dumps(index, ensure_ascii=False, separators=(",", ":")) + ";\n",
                                         encoding="utf-8")
    (out / "site.css").write_text((HERE / "docs_site.css").read_text() + HtmlFormatter().get_style_defs(".highlight"), encoding="utf-8")
    shutil.copy2(HERE / "docs_site.js", out / "site.js")
    return [out / f for _, f in order]
