"""Every page of the built book, read in a real headless browser at a desktop and a phone width.

Debian's ``chromium`` is driven by Selenium through Debian's ``chromium-driver`` (same version, so nothing
is downloaded; ``make system-deps`` installs both). The book is the session's ``book`` build (tests/conftest.py),
served from ``_build/html`` on a local port. Each page is loaded once at 1280 px, waited on until MathJax has
typeset it and its images have loaded, measured, then measured again at 400 px (CSS media queries re-apply at
once; MathJax's CommonHTML output does not depend on the width).

A page fails when, at either width:

* a code cell, an output, a display equation, an image or a table is wider than the text column (its box
  sticks out of the column, or its content is scrolled or cut inside it);
* an image does not load (or the server answers 4xx/5xx to anything the page requests, e.g. a favicon);
* the browser's console shows an error;
* a figure has no number ("Fig. 2.3"), no caption or no alt text; a page shows more than one search box;
  an exercise page does not set the cells the learner edits apart from the locked checks;
* a display equation has to be shrunk to fit the column at 1280 px, or below half its size at 400 px
  (chapters/_static/book.js scales wide equations down rather than let them be cut off);
* math is left untypeset (a ``.math`` element without MathJax output, a MathJax error, or raw TeX
  delimiters in the visible text, a backslash in typeset text), or a visible listing shows a docstring's
  reST markup (``.. math::``, ``:func:``; the ``listing`` directive keeps docstrings in a closed dropdown).

``test_the_scan_catches_each_kind_of_problem`` runs the same scan on a page broken on purpose, so every
check above is shown to fail when it should.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from selenium import webdriver  # noqa: F401 - pinned in the test group: a missing Selenium is an error, not a skip

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import headless  # noqa: E402
from headless import Server  # noqa: E402

WIDTHS = (1280, 400)          # a laptop window and a phone (CSS pixels)
HEIGHT = 900
PAGE_TIMEOUT_S = 20

# What is measured: the text column, and every block that must fit in it.
MEASURE_JS = r"""
const col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const box = col.getBoundingClientRect(), pad = getComputedStyle(col);
const c = {left: box.left + parseFloat(pad.paddingLeft), right: box.right - parseFloat(pad.paddingRight)};
c.width = c.right - c.left;
const blocks = [
  ['code cell', 'div.cell_input div.highlight pre, div.highlight pre'],
  ['output', 'div.cell_output pre, div.cell_output div.output'],
  ['display equation', 'mjx-container[display="true"], div.math'],
  ['image', 'article img'],
  ['table', 'article table'],
];
const snippet = (el) => {
  let t = (el.getAttribute('alt') || el.textContent || '').replace(/\s+/g, ' ').trim();
  if (el.tagName === 'MJX-CONTAINER' || el.classList.contains('math')) {
    const tex = el.closest('.math');
    t = tex && tex.dataset.tex ? tex.dataset.tex : t;
  }
  return t.slice(0, 70);
};
const seen = new Set();
const wide = [];
for (const [kind, selector] of blocks) {
  for (const el of col.querySelectorAll(selector)) {
    if (seen.has(el)) continue;
    seen.add(el);
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;          // folded away (a closed dropdown)
    let over = Math.max(r.right - c.right, c.left - r.left, el.scrollWidth - el.clientWidth);
    const inner = el.querySelector(':scope > mjx-math');
    if (inner) {
      const m = inner.getBoundingClientRect();
      over = Math.max(over, m.right - c.right, c.left - m.left);
    }
    if (over > 1) wide.push([kind, Math.round(over), Math.round(c.width), snippet(el)]);
  }
}
const scaled = [];
for (const el of col.querySelectorAll('mjx-container[data-fit-scale]')) {
  scaled.push([parseFloat(el.dataset.fitScale), snippet(el)]);
}
const figures = [];
for (const img of col.querySelectorAll('img')) {
  const figure = img.closest('figure');
  const number = figure && figure.querySelector('figcaption .caption-number');
  const caption = figure && figure.querySelector('figcaption');
  figures.push({src: img.getAttribute('src'), alt: img.getAttribute('alt') || '',
                number: number ? number.textContent.trim() : '',
                caption: caption ? caption.textContent.replace(/\s+/g, ' ').trim() : ''});
}
const searchBoxes = Array.from(document.querySelectorAll('.search-button-field, input[type="search"]'))
  .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden').length;
const cellStyle = (sel) => {
  const el = col.querySelector(sel);
  return el ? getComputedStyle(el).borderLeftColor + ' / ' + getComputedStyle(el, '::before').content : '';
};
const cells = {solution: col.querySelectorAll('div.cell.nbgrader-solution').length,
               locked: col.querySelectorAll('div.cell.nbgrader-locked').length,
               solutionStyle: cellStyle('div.cell.nbgrader-solution'),
               lockedStyle: cellStyle('div.cell.nbgrader-locked'),
               unmarked: Array.from(col.querySelectorAll('div.cell'), (el) => el.className)
                 .filter((k) => !/nbgrader-(solution|locked|free)/.test(k)).length};
const broken = [];
for (const img of document.querySelectorAll('img')) {
  if (!img.complete || img.naturalWidth === 0) broken.push(img.getAttribute('src'));
}
const raw = [];
for (const el of col.querySelectorAll('.math')) {
  if (!el.querySelector('mjx-container')) raw.push('not typeset: ' + el.textContent.trim().slice(0, 70));
}
for (const el of col.querySelectorAll('mjx-merror')) {
  raw.push('MathJax error: ' + (el.getAttribute('data-mjx-error') || el.textContent).slice(0, 70));
}
for (const el of col.querySelectorAll('mjx-assistive-mml mtext')) {      // \text{max\_norm} shows "\_"
  if (el.textContent.includes('\\')) raw.push('backslash in typeset text: ' + el.textContent.slice(0, 70));
}
for (const pre of col.querySelectorAll('pre')) {          // a docstring's reST shown as code
  if (!pre.getClientRects().length || pre.closest('details:not([open])')) continue;  // one click away: fine
  const m = pre.textContent.match(/^\s*\.\. (math|note|warning)::|:(func|class|meth|math):`/m);
  if (m) raw.push('raw reST in a listing: ' + m[0].trim());
}
const walker = document.createTreeWalker(col, NodeFilter.SHOW_TEXT);
const skip = 'pre, code, script, style, mjx-container, .highlight, textarea';
const tex = /\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\frac\{|\\mathrm\{|\\text\{/;
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const p = n.parentElement;
  if (p.closest(skip) || !p.getClientRects().length) continue;
  const m = n.textContent.match(tex);
  if (m) raw.push('raw TeX: ' + n.textContent.trim().slice(0, 70));
}
return {column: Math.round(c.width), wide: wide, scaled: scaled, figures: figures, search: searchBoxes, cells: cells, broken: broken, raw: raw,
        mathjax: !!(window.MathJax && MathJax.startup), nmath: col.querySelectorAll('.math').length};
"""




# --------------------------------------------------------------------------- serving and the browser

def start_browser():
    try:
        return headless.start_browser(width=WIDTHS[0], height=HEIGHT, timeout_s=PAGE_TIMEOUT_S, console_log=True)
    except headless.BrowserMissing as exc:
        pytest.fail(str(exc))


def set_width(driver, width: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": width < 600})


def scan(driver, server: Server, pages: list[str]) -> dict[str, dict[int, dict]]:
    """Load each page, let it settle, and measure it at every width: {page: {width: findings}}."""
    results: dict[str, dict[int, dict]] = {}
    for page in pages:
        set_width(driver, WIDTHS[0])
        del server.failures[:]
        driver.get_log("browser")                    # drop what an earlier page left
        driver.get(f"{server.url}/{page}")
        settled = driver.execute_async_script(headless.SETTLE_JS)
        console = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        results[page] = {}
        for width in WIDTHS:
            set_width(driver, width)
            driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
            found = driver.execute_script(MEASURE_JS)
            found["console"] = console + [e["message"] for e in driver.get_log("browser")
                                          if e["level"] == "SEVERE"]
            found["http"] = list(server.failures)
            if found["nmath"] and settled != "typeset":
                found["raw"].append(f"MathJax did not finish: {settled}")
            results[page][width] = found
    return results


def book_pages(html: Path) -> list[str]:
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def browser():
    driver = start_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def pages_scan(book, browser):
    assert book.returncode == 0, f"the book did not build:\n{book.log[-3000:]}"
    server = Server(book.html)
    try:
        start = time.perf_counter()
        results = scan(browser, server, book_pages(book.html))
        print(f"browser scan of {len(results)} pages at {WIDTHS} px: {time.perf_counter() - start:.1f} s")
    finally:
        server.close()
    return results


def findings(results, key) -> list[str]:
    out = []
    for page, by_width in results.items():
        for width, found in by_width.items():
            out += [f"{page} at {width} px: {item}" for item in found[key]]
    return out


# --------------------------------------------------------------------------- the book

def test_every_page_is_scanned(book, pages_scan):
    pages = set(pages_scan)
    for required in ("index.html", "search.html", "chapters/01_chain_rule.html",
                     "exercises/ex01_chain_rule/ex01_chain_rule.html"):
        assert required in pages, f"{required} was not scanned"
    for page, by_width in pages_scan.items():
        assert set(by_width) == set(WIDTHS)
        # the column really changes with the width, so the phone layout was the one measured
        assert by_width[400]["column"] <= 400 < by_width[1280]["column"], (page, by_width)


def test_nothing_is_wider_than_its_column(pages_scan):
    wide = []
    for page, by_width in pages_scan.items():
        for width, found in by_width.items():
            wide += [f"{page} at {width} px (column {col} px): {kind} {over} px too wide: {text!r}"
                     for kind, over, col, text in found["wide"]]
    assert wide == [], f"{len(wide)} blocks are cut off:\n" + "\n".join(wide)


# The book's script scales a display equation down to the column when it is wider. At the desktop width
# none may need it (long ones are split with aligned/gathered); on a phone none may shrink below half size,
# where indices and fractions become hard to read.
MIN_PHONE_SCALE = 0.5


def test_no_equation_is_shrunk_at_desktop_width(pages_scan):
    shrunk = [f"{page}: scaled to {scale:.0%}: {tex!r}"
              for page, by_width in pages_scan.items() for scale, tex in by_width[WIDTHS[0]]["scaled"]]
    assert shrunk == [], "split these equations (aligned, gathered):\n" + "\n".join(shrunk)


def test_equations_stay_readable_on_a_phone(pages_scan):
    small = [f"{page}: scaled to {scale:.0%}: {tex!r}"
             for page, by_width in pages_scan.items() for scale, tex in by_width[WIDTHS[1]]["scaled"]
             if scale < MIN_PHONE_SCALE]
    assert small == [], "split these equations (aligned, gathered):\n" + "\n".join(small)


def test_every_figure_has_a_number_a_caption_and_alt_text(pages_scan):
    problems, count = [], 0
    for page, by_width in pages_scan.items():
        for fig in by_width[WIDTHS[0]]["figures"]:
            count += 1
            if not re.fullmatch(r"Fig\. \d+\.\d+", fig["number"]):
                problems.append(f"{page}: {fig['src']} has no figure number (got {fig['number']!r})")
            if len(fig["caption"]) - len(fig["number"]) < 40:
                problems.append(f"{page}: {fig['src']} has no caption that says what to see: {fig['caption']!r}")
            if len(fig["alt"]) < 20 or re.search(r"\.(png|svg|jpe?g)$", fig["alt"]):
                problems.append(f"{page}: {fig['src']} has no alt text (alt={fig['alt']!r})")
    assert count >= 20, f"only {count} figures found in the book"
    assert problems == [], "\n".join(problems)


def test_one_search_box_per_page(pages_scan):
    # (search.html itself adds its results form to the sidebar's box)
    counts = {page: by_width[WIDTHS[0]]["search"] for page, by_width in pages_scan.items() if page != "search.html"}
    assert all(n <= 1 for n in counts.values()), counts
    assert counts["chapters/01_chain_rule.html"] == 1, counts


def test_exercise_pages_mark_the_cells_to_edit_and_the_locked_checks(pages_scan):
    exercises = {page: by_width[WIDTHS[0]]["cells"] for page, by_width in pages_scan.items()
                 if page.startswith("exercises/")}
    assert len(exercises) >= 5, exercises
    for page, cells in exercises.items():
        assert cells["solution"] >= 1 and cells["locked"] >= 1, (page, cells)
        assert cells["solutionStyle"] != cells["lockedStyle"], (page, cells)
        assert "Your code" in cells["solutionStyle"] and "Locked" in cells["lockedStyle"], (page, cells)
        assert cells["unmarked"] == 0, (page, cells)


def test_every_image_loads(pages_scan):
    broken = findings(pages_scan, "broken") + findings(pages_scan, "http")
    assert broken == [], "\n".join(broken)


def test_no_console_errors(pages_scan):
    errors = sorted(set(findings(pages_scan, "console")))
    assert errors == [], "\n".join(errors)


def test_all_math_is_typeset(pages_scan):
    raw = findings(pages_scan, "raw")
    assert raw == [], "\n".join(raw)
    chapter = pages_scan["chapters/01_chain_rule.html"][1280]
    assert chapter["mathjax"] and chapter["nmath"] > 100, chapter


def test_a_page_prints_alone_at_full_width(book, browser):
    """Print (the theme's "Download PDF"): no sidebars or navigation, the text full width, code wrapped."""
    server = Server(book.html)
    try:
        set_width(browser, WIDTHS[0])
        browser.get(f"{server.url}/chapters/04_batchnorm.html")
        browser.execute_async_script(headless.SETTLE_JS)
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        printed = browser.execute_script("""
            const shown = (sel) => Array.from(document.querySelectorAll(sel)).filter(
                (el) => getComputedStyle(el).display !== 'none' && el.getClientRects().length).length;
            const article = document.querySelector('article.bd-article').getBoundingClientRect();
            return {sidebars: shown('.bd-sidebar-primary, .bd-sidebar-secondary, .prev-next-area'),
                    width: article.width / window.innerWidth,
                    wrap: getComputedStyle(document.querySelector('div.cell_input pre')).whiteSpace,
                    unsplit: getComputedStyle(document.querySelector('div.cell')).breakInside};""")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        server.close()
    assert printed["sidebars"] == 0, printed
    assert printed["width"] > 0.85, printed
    assert printed["wrap"] == "pre-wrap" and printed["unsplit"] == "avoid", printed


SEARCH_JS = r"""
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  const items = document.querySelectorAll('#search-results li');
  const snippets = Array.from(document.querySelectorAll('#search-results p.context'), (p) => p.textContent);
  const finished = /Search finished|found/i.test((document.querySelector('#search-results .search-summary')
                                                 || document.querySelector('#search-results h2') || {}).textContent || '');
  if ((finished && items.length && snippets.length >= Math.min(items.length, 5)) || Date.now() - start > 15000) {
    return done({items: items.length, snippets: snippets});
  }
  setTimeout(poll, 100);
})();
"""


def test_search_snippets_show_no_raw_tex(book, browser):
    """A search result's snippet is cut from the page's HTML, where math is still TeX source."""
    server = Server(book.html)
    try:
        set_width(browser, WIDTHS[0])
        browser.get(f"{server.url}/search.html?q=sigmoid")
        found = browser.execute_async_script(SEARCH_JS)
    finally:
        server.close()
    assert found["items"] >= 3 and found["snippets"], found
    raw = [s for s in found["snippets"] if re.search(r"\\[(\[a-zA-Z]|\$\$", s)]
    assert raw == [], "\n".join(raw)


# --------------------------------------------------------------------------- the checker itself

BROKEN_BLOCKS = """
<div class="cell docutils container"><div class="cell_input docutils container"><div class="highlight"><pre>
wide_code = [{"x": 1}] + [""" + ", ".join(str(i) for i in range(60)) + """]</pre></div></div></div>
<img alt="a figure that is not there" src="../_images/does-not-exist.png" />
<div class="math notranslate nohighlight">\\[\\frac{a}{b} = """ + " + ".join(f"x_{{{i}}}" for i in range(40)) + """\\]</div>
<p>An equation left as raw TeX: \\(x^2\\)</p>
<div class="math notranslate nohighlight">\\[\\frac{1}\\]</div>
<p>Typeset, but with a visible backslash: <span class="math notranslate nohighlight">\\(\\text{max\\_norm}\\)</span></p>
<div class="highlight"><pre>def f(x):
    &quot;&quot;&quot;Square.

    .. math:: f(x) = x^2
    &quot;&quot;&quot;</pre></div>
<script>console.error("an error on purpose");</script>
"""


def test_the_scan_catches_each_kind_of_problem(book, browser, tmp_path):
    """A chapter page with a wide code line, a long equation, a missing image, raw TeX, a MathJax error
    and a console error: the scan reports each one, at the widths where it applies."""
    site = tmp_path / "site"
    (site / "chapters").mkdir(parents=True)
    for name in ("_static", "_images"):
        (site / name).symlink_to(book.html / name)
    page = (book.html / "chapters" / "notation.html").read_text(encoding="utf-8")
    # without the book's stylesheet and script, which wrap code and fit equations to the column
    page = re.sub(r'<link[^>]*_static/book\.css[^>]*>|<script[^>]*_static/book\.js[^>]*></script>', "", page)
    assert "book.css" not in page and "book.js" not in page
    marker = '<section id="'
    assert marker in page
    at = page.index(marker)
    (site / "chapters" / "broken.html").write_text(page[:at] + BROKEN_BLOCKS + page[at:], encoding="utf-8")
    server = Server(site)
    try:
        results = scan(browser, server, ["chapters/broken.html"])["chapters/broken.html"]
    finally:
        server.close()
    for width in WIDTHS:
        found = results[width]
        kinds = {kind for kind, *_ in found["wide"]}
        assert {"code cell", "display equation"} <= kinds, (width, found["wide"])
        assert any("does-not-exist.png" in src for src in found["broken"]), found["broken"]
        assert any("does-not-exist.png" in f for f in found["http"]), found["http"]
        assert any("an error on purpose" in m for m in found["console"]), found["console"]
        assert any(r.startswith("raw TeX") and "x^2" in r for r in found["raw"]), found["raw"]
        assert any(r.startswith("MathJax error") for r in found["raw"]), found["raw"]
        assert any(r.startswith("backslash in typeset text") for r in found["raw"]), found["raw"]
        assert any(r.startswith("raw reST in a listing") for r in found["raw"]), found["raw"]
