// The offline docs site (tools/docs_site.py): collapsible navigation on narrow screens, and search over
// window.SEARCH_INDEX (search_index.js: [{u: page, t: title, h: [[id, heading]...], x: text}]). Search reads ?q= too.
(() => {
  // the sidebar and contents are open <details> (readable without JS); closed by default where they would push the page down
  const fold = (sel, query) => {
    const d = document.querySelector(sel), mq = matchMedia(query);
    if (!d) return;
    const set = () => { d.open = !mq.matches; };
    set(); mq.addEventListener("change", set);
  };
  fold("details.side", "(max-width: 800px)");
  fold("details.toc", "(max-width: 1100px)");

  const index = window.SEARCH_INDEX || [], input = document.getElementById("q"),
        results = document.getElementById("results"), article = document.querySelector("main article");
  const esc = s => s.replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const count = (s, w) => { let n = 0, i = -1; while ((i = s.indexOf(w, i + 1)) >= 0 && n < 50) n++; return n; };
  const mark = (s, terms) => esc(s).replace(new RegExp(terms.map(w => esc(w).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "gi"),
                                            m => `<mark>${m}</mark>`);

  function search(query) {
    const terms = query.toLowerCase().split(/\s+/).filter(Boolean), hits = [];
    if (!terms.length) return hits;
    for (const p of index) {
      const t = p.t.toLowerCase(), x = p.x.toLowerCase(), hs = p.h.map(h => h[1].toLowerCase());
      if (!terms.every(w => t.includes(w) || x.includes(w) || hs.some(h => h.includes(w)))) continue;  // every word somewhere
      const heads = p.h.filter((h, i) => terms.some(w => hs[i].includes(w)));
      const phrase = terms.join(" ");  // the words together count more than apart
      const score = terms.reduce((s, w) => s + (t.includes(w) ? 20 : 0) + Math.min(count(x, w), 20), 0) + 5 * heads.length
                    + (terms.length > 1 ? 10 * Math.min(count(x, phrase), 10) + (t.includes(phrase) ? 40 : 0) : 0);
      let at = x.indexOf(phrase);
      if (at < 0) at = Math.min(...terms.map(w => { const i = x.indexOf(w); return i < 0 ? Infinity : i; }));
      const from = at > 60 ? x.lastIndexOf(" ", at - 60) + 1 : 0;  // start the snippet at a word
      const snip = at === Infinity ? "" : (from ? "…" : "") + p.x.slice(from, at + 160) + "…";
      hits.push({p, heads, score, snip});
    }
    return hits.sort((a, b) => b.score - a.score);
  }

  function show(query) {
    const hits = search(query), terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    results.hidden = !terms.length; if (article) article.hidden = !!terms.length;
    if (!terms.length) return;
    results.innerHTML = `<h2>${hits.length} page${hits.length === 1 ? "" : "s"} for “${esc(query)}”</h2><ol>` + hits.map(({p, heads, snip}) =>
      `<li><a href="${p.u}"><b>${mark(p.t, terms)}</b></a>` +
      (heads.length ? `<div class="hits">${heads.slice(0, 8).map(h => `<a href="${p.u}#${h[0]}">${mark(h[1], terms)}</a>`).join("")}</div>` : "") +
      (snip ? `<p>${mark(snip, terms)}</p>` : "") + "</li>").join("") + "</ol>";
  }

  if (!input || !results) return;
  input.addEventListener("input", () => show(input.value.trim()));
  input.addEventListener("keydown", e => { if (e.key === "Escape") { input.value = ""; show(""); } });
  input.form.addEventListener("submit", e => {  // Enter opens the best hit
    e.preventDefault();
    const first = results.querySelector("a");
    if (first && !results.hidden) location.href = first.href;
  });
  const q = new URLSearchParams(location.search).get("q");
  if (q) { input.value = q; show(q.trim()); }
})();
