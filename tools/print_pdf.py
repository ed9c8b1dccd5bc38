"""Print a single-page HTML build of the book to one PDF with Debian's headless chromium, offline, and check it.

``make pdf`` builds the book with Sphinx's ``singlehtml`` builder into ``_build/singlehtml`` (the execution cache
of ``make book`` serves every chapter: nothing is executed again) and runs::

    python tools/print_pdf.py _build/singlehtml _build/pdf/book.pdf --toc _toc.yml

The folder is served on a local port (not ``file://``: MathJax and the images load as they do on the web). The
page is printed with Chrome DevTools' ``Page.printToPDF`` (A4, backgrounds, the book's print stylesheet in
chapters/_static/book.css) only once MathJax has typeset every equation and every image has loaded. The PDF is then
read back with poppler's ``pdftotext``, ``pdfinfo`` and ``pdfimages`` (Debian ``poppler-utils``), and the script
exits 1, saying what is wrong, when the PDF

* shows raw TeX (``\\frac{``, ``$$``, ``\\begin{``...) instead of typeset math,
* misses a page title of ``--toc`` (every chapter, exercise and front/back-matter page), or
* embeds fewer images than the page has.

tests/test_pdf.py prints a small book with the same code and shows each check failing when it should.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import headless  # noqa: E402
from headless import Server  # noqa: E402,F401 - the server print_book and the tests use

TIMEOUT_S = 120



# What the page holds, to compare with the PDF: its images (loaded or not) and its math.
PAGE_JS = r"""
const imgs = Array.from(document.querySelectorAll('article img, main img'));
return {images: imgs.length,
        broken: imgs.filter((img) => !img.complete || img.naturalWidth === 0).map((img) => img.getAttribute('src')),
        math: document.querySelectorAll('.math').length,
        typeset: document.querySelectorAll('mjx-container').length,
        code: Array.from(document.querySelectorAll('pre, code'), (el) => el.textContent).join('\n')};
"""

RAW_TEX = re.compile(r"\\frac\{|\$\$|\\begin\{|\\end\{|\\mathrm\{|\\text\{|\\left[(\[|]|\\sum_|\\partial\b|\\\(|\\\[")

A4 = {"paperWidth": 8.27, "paperHeight": 11.69}      # inches
MARGIN_IN = 0.5


# --------------------------------------------------------------------------- serving and the browser

def start_browser():
    """Debian's chromium through Debian's chromium-driver (Selenium downloads nothing)."""
    try:
        return headless.start_browser(timeout_s=TIMEOUT_S)
    except headless.BrowserMissing as exc:
        raise SystemExit(str(exc)) from None


def single_page(html: Path) -> str:
    """The page of a singlehtml build that holds the book (index.html is only a redirect to it).

    Sphinx writes it as ``<root_doc>.html`` (here chapters/intro.html) but with every link relative to the top
    of the build (``_static/``, ``_images/``): it is served at the top (``/book.html``), or MathJax and the
    images do not load."""
    index = html / "index.html"
    if index.exists():
        m = re.search(r'http-equiv="refresh"[^>]*url=([^"\'>]+)', index.read_text(encoding="utf-8"), re.I)
        if m:
            return m.group(1)
    return "index.html"


def print_page(driver, url: str, out: Path, *, block: tuple[str, ...] = (), settle: bool = True) -> dict:
    """Load ``url``, wait until it has settled, print it to ``out``; return what the page held.

    ``block`` (URL patterns, e.g. ``*mathjax*``) and ``settle=False`` exist for tests/test_pdf.py, which shows
    that the checks fail when MathJax or the images do not make it into the PDF."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": list(block)})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": bool(block)})
    try:
        driver.get(url)
        state = driver.execute_async_script(headless.SETTLE_JS) if settle else "not awaited"
        page = driver.execute_script(PAGE_JS)
        page["mathjax"] = state
        pdf = driver.execute_cdp_cmd("Page.printToPDF", {
            "printBackground": True, "preferCSSPageSize": True, **A4,
            "marginTop": MARGIN_IN, "marginBottom": MARGIN_IN, "marginLeft": MARGIN_IN, "marginRight": MARGIN_IN,
            "displayHeaderFooter": True, "headerTemplate": "<span></span>",
            "footerTemplate": '<div style="font-size:8px;width:100%;text-align:center">'
                              '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'})
    finally:
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(pdf["data"]))
    return page


# --------------------------------------------------------------------------- reading the PDF back

def _poppler(tool: str, *args: str) -> str:
    exe = shutil.which(tool)
    if not exe:
        raise SystemExit(f"{tool} (Debian poppler-utils) is required: run `make system-deps`")
    return subprocess.run([exe, *args], capture_output=True, text=True, check=True).stdout


def pdf_text(pdf: Path) -> str:
    return _poppler("pdftotext", "-enc", "UTF-8", str(pdf), "-")


def pdf_pages(pdf: Path) -> int:
    return int(re.search(r"^Pages:\s+(\d+)", _poppler("pdfinfo", str(pdf)), re.M).group(1))


def pdf_images(pdf: Path) -> int:
    """Images embedded in the PDF (pdfimages lists two header lines; soft masks are not counted)."""
    rows = [ln.split() for ln in _poppler("pdfimages", "-list", str(pdf)).splitlines()[2:]]
    return sum(1 for r in rows if len(r) > 2 and r[2] == "image")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def toc_titles(toc: Path) -> list[str]:
    """The first heading of every page in a Jupyter Book ``_toc.yml`` (from the sources, not from the build)."""
    import yaml

    spec = yaml.safe_load(toc.read_text())
    files = [spec["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in spec.get("parts", []):
        walk(part.get("chapters", []))
    walk(spec.get("chapters", []))
    titles = []
    for name in files:
        base = toc.parent / name
        if base.with_suffix(".ipynb").exists():
            nb = json.loads(base.with_suffix(".ipynb").read_text(encoding="utf-8"))
            source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        else:
            source = base.with_suffix(".md").read_text(encoding="utf-8")
        m = re.search(r"^# +(.+?)\s*$", source, re.M)
        if not m:
            raise SystemExit(f"{name}: no '# title' heading to look for in the PDF")
        titles.append(m.group(1))
    return titles


def check_pdf(pdf: Path, titles: list[str], page: dict) -> list[str]:
    """What is wrong with the printed PDF (an empty list when nothing is)."""
    problems = []
    text = pdf_text(pdf)
    flat = _norm(text)
    for title in titles:
        if _norm(title) not in flat:
            problems.append(f"title missing from the PDF: {title!r}")
    # TeX inside code (a plot label r"$\\partial ...$") is printed as written: only what is more than that counts.
    in_code = Counter(m.group(0) for m in RAW_TEX.finditer(page["code"]))
    raw = sorted(tex for tex, n in Counter(m.group(0) for m in RAW_TEX.finditer(text)).items() if n > in_code[tex])
    if raw or (page["math"] and page["mathjax"] != "typeset"):
        problems.append(f"math not typeset (MathJax: {page['mathjax']}; raw TeX in the PDF: {raw})")
    if page["broken"]:
        problems.append(f"images did not load: {page['broken'][:5]}")
    embedded = pdf_images(pdf)
    if embedded < page["images"]:
        problems.append(f"{embedded} images embedded in the PDF, the page has {page['images']}")
    return problems


def print_book(html: Path, out: Path, titles: list[str], *, driver=None, page: str | None = None,
               block: tuple[str, ...] = (), settle: bool = True) -> tuple[dict, list[str]]:
    """Serve ``html``, print its single page to ``out`` and check it: (what the page held, problems)."""
    own = driver is None
    server = Server(html, {"/book.html": "/" + (page or single_page(html))})
    try:
        driver = driver or start_browser()
        held = print_page(driver, f"{server.url}/book.html", out, block=block, settle=settle)
    finally:
        if own and driver is not None:
            driver.quit()
        server.close()
    return held, check_pdf(out, titles, held)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="a singlehtml build (e.g. _build/singlehtml)")
    parser.add_argument("pdf", type=Path, help="the PDF to write (e.g. _build/pdf/book.pdf)")
    parser.add_argument("--toc", type=Path, help="_toc.yml: every page title it lists must be in the PDF")
    parser.add_argument("--page", help="the page to print (default: the one index.html redirects to)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    titles = toc_titles(args.toc) if args.toc else []
    held, problems = print_book(args.html, args.pdf, titles, page=args.page)
    seconds = time.perf_counter() - start
    if problems:
        print(f"print_pdf: {args.pdf} is not right:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    size = args.pdf.stat().st_size / 2**20
    print(f"{args.pdf}: {pdf_pages(args.pdf)} pages, {size:.1f} MiB, {len(titles)} titles, "
          f"{held['images']} images, {held['typeset']} equations typeset ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
