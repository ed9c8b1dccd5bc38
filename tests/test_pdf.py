"""``make pdf``: the book as one PDF, printed by headless chromium from a single-page build (tools/print_pdf.py).

A small book (the real _config.yml, three pages: an intro and two chapters with display and inline math, a figure
and a code cell) is built with the same ``jupyter-book build --builder singlehtml`` as ``make pdf`` and printed with
the same code, then read back with poppler (pdftotext, pdfinfo, pdfimages). The PDF must hold every page in the
book's order, typeset math (no raw ``\\frac{``/``$$``), and the embedded figure. The same checks are then shown to
fail: when MathJax is not waited for (it typesets this book late, as it typesets the whole book for seconds after
the page has loaded), with MathJax blocked, with the images blocked, and with a page title the PDF does not contain (``make pdf``
passes every title of _toc.yml, so a missing chapter fails it loudly).
"""

from __future__ import annotations

import re
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import print_pdf  # noqa: E402  (tools/print_pdf.py, what `make pdf` runs)
from test_book import jupyter_book_build  # noqa: E402

pytestmark = pytest.mark.xdist_group("pdf")

PAGES = {
    "chapters/intro": "# Fixture book for printing\n\nThe introduction says hello from page one.\n",
    "chapters/one": (
        "# First printed chapter\n\nThe first chapter derives a fraction:\n\n"
        "$$\n\\frac{\\partial \\mathcal{L}}{\\partial w} = \\sum_{i=1}^{n} x_i \\delta_i\n$$\n\n"
        "and an inline one, $\\mathrm{Var}(z) = \\frac{1}{2}$, before the figure.\n\n"
        "```{figure} plot.png\n:alt: A striped test image that must be embedded in the PDF\n\n"
        "A striped image: the PDF must embed it.\n```\n\n"
        "```python\nlabel = r\"$\\partial \\mathcal{L} / \\partial z$\"   # TeX in code is printed as written\n```\n"
    ),
    "chapters/two": (
        "# Second printed chapter\n\n"
        # MathJax typesets the whole book for seconds after the page has loaded; this page makes it as late, so a
        # print that does not wait for MathJax prints raw TeX here too.
        "```{raw} html\n<script>window.MathJax = Object.assign(window.MathJax || {}, {startup: {pageReady: () =>"
        " new Promise((ok) => setTimeout(ok, 1500)).then(() => MathJax.startup.defaultPageReady())}});</script>\n"
        "```\n\nThe second chapter aligns two equations:\n\n"
        "$$\n\\begin{aligned} a &= b + c \\\\ d &= \\frac{e}{f} \\end{aligned}\n$$\n\n"
        "The second chapter ends here.\n"
    ),
}
TITLES = ["Fixture book for printing", "First printed chapter", "Second printed chapter"]


def png(width: int = 240, height: int = 120) -> bytes:
    """A small striped RGB PNG (written by hand: no imaging library needed)."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 200 if x // 20 % 2 else 40))
                                        for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def single_build(tmp_path_factory, pycache):
    """The small book, built as one page exactly as ``make pdf`` builds the real one."""
    path = tmp_path_factory.mktemp("pdf_book")
    (path / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    for assets in ("_static", "_root", "_ext"):
        shutil.copytree(ROOT / "chapters" / assets, path / "chapters" / assets)
    shutil.copy2(ROOT / "chapters" / "references.bib", path / "chapters" / "references.bib")
    for name, text in PAGES.items():
        (path / f"{name}.md").write_text(text)
    (path / "chapters" / "plot.png").write_bytes(png())
    toc = {"format": "jb-book", "root": "chapters/intro",
           "parts": [{"caption": "Chapters", "numbered": True,
                      "chapters": [{"file": "chapters/one"}, {"file": "chapters/two"}]}]}
    (path / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    build = jupyter_book_build(path, pycache, "--builder", "singlehtml")
    assert build.returncode == 0, build.log[-3000:]
    assert build.warnings() == [], "\n".join(build.warnings())
    return path


@pytest.fixture(scope="module")
def driver():
    driver = print_pdf.start_browser()
    yield driver
    driver.quit()


def printed(single_build, driver, tmp_path, titles=TITLES, **kwargs):
    out = tmp_path / "book.pdf"
    held, problems = print_pdf.print_book(single_build / "_build" / "singlehtml", out, titles, driver=driver,
                                          **kwargs)
    return out, held, problems


def test_toc_titles_are_every_page_of_the_book():
    titles = print_pdf.toc_titles(ROOT / "_toc.yml")
    assert titles[0] == "Taming Unstable Gradients"
    assert "The chain rule through depth" in titles and "References" in titles
    assert sum(t.startswith("Exercise ") for t in titles) == 5, titles
    assert len(titles) == 14, titles


@pytest.fixture(scope="module")
def good(single_build, driver, tmp_path_factory):
    """The small book printed as ``make pdf`` prints: (the PDF, what the page held, the problems found)."""
    return printed(single_build, driver, tmp_path_factory.mktemp("good"))


def test_the_book_prints_to_one_pdf_with_its_pages_typeset_math_and_images(good):
    pdf, held, problems = good
    assert problems == [], problems
    assert held["mathjax"] == "typeset" and held["typeset"] >= 3, held
    assert held["images"] == 1 and held["broken"] == [], held
    text = re.sub(r"\s+", " ", print_pdf.pdf_text(pdf))
    # every page, in the book's order (a title's last occurrence is its heading, after the contents list)
    where = [text.rfind("Fixture book for printing"), text.find("hello from page one"),
             text.rfind("First printed chapter"), text.find("before the figure"),
             text.rfind("Second printed chapter"), text.find("The second chapter ends here")]
    assert -1 not in where and where == sorted(where), (where, text[:2000])
    # the print stylesheet starts each page of the book on a new sheet
    assert print_pdf.pdf_pages(pdf) == 3
    sheets = [print_pdf._poppler("pdftotext", "-f", str(n), "-l", str(n), str(pdf), "-") for n in (1, 2, 3)]
    assert "hello from page one" in sheets[0] and "First printed chapter" in sheets[1], sheets
    assert "Second printed chapter" in sheets[2] and "hello" not in sheets[1] + sheets[2], sheets
    assert print_pdf.pdf_images(pdf) >= 1
    # typeset: no TeX source outside the code cell, and MathJax's glyphs (∂, ∑) in the text
    assert "\\frac" not in text and "$$" not in text and "\\begin{" not in text, text
    in_code = PAGES["chapters/one"].split("```python")[1].count("\\partial")
    assert text.count("\\partial") == in_code == 2, "only the code cell's label is TeX source"
    assert "∂" in text and "∑" in text, text
    # the print stylesheet: no sidebar or navigation printed
    assert "Search this book" not in text and "Next" not in text.split("Second printed chapter")[-1], text


@pytest.mark.parametrize("block, expected", [
    (("*mathjax*",), "math not typeset"),
    (("*.png",), "images"),
])
def test_the_checks_fail_when_math_or_images_are_missing(single_build, driver, tmp_path, block, expected):
    _, _, problems = printed(single_build, driver, tmp_path, block=block)
    assert any(expected in p for p in problems), problems


def test_the_checks_fail_when_mathjax_is_not_waited_for(single_build, driver, tmp_path):
    _, held, problems = printed(single_build, driver, tmp_path, settle=False)
    assert held["mathjax"] == "not awaited"
    assert any("math not typeset" in p and "\\frac{" in p for p in problems), problems


def test_a_missing_page_title_fails(good):
    pdf, held, _ = good
    problems = print_pdf.check_pdf(pdf, TITLES + ["A chapter that was not printed"], held)
    assert problems == ["title missing from the PDF: 'A chapter that was not printed'"], problems


def test_make_pdf_prints_the_single_page_build_with_every_toc_title():
    recipe = (ROOT / "Makefile").read_text().split("\npdf:", 1)[1].split("\n\n", 1)[0]
    assert "jupyter-book build . --builder singlehtml -W" in recipe
    assert "tools/print_pdf.py _build/singlehtml _build/pdf/book.pdf --toc _toc.yml" in recipe
