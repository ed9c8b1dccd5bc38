"""The HTML book: builds with zero warnings, works offline, never shows solutions, executes only chapters.

Every test here runs the real ``jupyter-book build`` CLI (the same command as ``make book``), either on a
temporary copy of the real book or on a small fixture book that reuses the real ``_config.yml``. Nothing
is built inside the repository itself.

Build times are measured by ``tests/benchmarks/course_speed.py`` (``make bench``), not asserted here.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
JUPYTER_BOOK = BIN / "jupyter-book"

CELL_TIMEOUT_S = 120

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SPHINX_PROBLEM = re.compile(r"(?:^|: )(?:WARNING|ERROR|CRITICAL|SEVERE):")
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


# --------------------------------------------------------------------------- helpers

def _env(pycache: Path) -> dict[str, str]:
    env = dict(os.environ)
    # myst-nb starts the `python3` kernel it finds on PATH: the project's environment comes first.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    env["MPLBACKEND"] = "Agg"
    # Byte-compile imports once per test session (outside the repository), so that only the first build
    # pays for compiling Sphinx and its extensions when PYTHONDONTWRITEBYTECODE is set.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


class Build:
    def __init__(self, path: Path, returncode: int, log: str, seconds: float):
        self.path, self.returncode, self.log, self.seconds = path, returncode, log, seconds

    @property
    def html(self) -> Path:
        return self.path / "_build" / "html"

    def warnings(self) -> list[str]:
        """Sphinx's warnings and errors (``path:line: WARNING: ...``), not the kernel's own log lines."""
        return [ln for ln in self.log.splitlines() if SPHINX_PROBLEM.search(ln)]


def jupyter_book_build(path: Path, pycache: Path, *extra: str, all_files: bool = True) -> Build:
    """Run ``jupyter-book build <path> -W -n --keep-going [--all]`` and return its outcome."""
    assert JUPYTER_BOOK.exists(), f"jupyter-book not found next to {sys.executable}"
    cmd = [str(JUPYTER_BOOK), "build", str(path), "-W", "-n", "--keep-going", *extra]
    if all_files:
        cmd.append("--all")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=path, env=_env(pycache), capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    log = ANSI.sub("", proc.stdout + "\n" + proc.stderr)
    return Build(path, proc.returncode, log, seconds)


def copy_book(dest: Path) -> Path:
    """Copy what the book is built from (and solutions/, to prove they are excluded) into ``dest``."""
    ignore = shutil.ignore_patterns("_build", ".ipynb_checkpoints", "__pycache__", "*.pyc")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("chapters", "exercises", "solutions", "src"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []))
    return files


def html_pages(build: Build) -> list[Path]:
    return sorted(build.html.rglob("*.html"))


def page_text(page: Path) -> str:
    """The visible text of an HTML page (tags stripped, entities decoded)."""
    raw = page.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def make_notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in cells:
        new = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        nb.cells.append(new(source))
    return nb


# --------------------------------------------------------------------------- fixtures

# The session's ``book`` and ``pycache`` fixtures live in tests/conftest.py: tests/test_pages.py reads the
# same build in a browser, and both files form one xdist group, so the book is built once per session.


# --------------------------------------------------------------------------- configuration

def test_config_declares_offline_cached_strict_build():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["title"] == "Taming Unstable Gradients"
    assert config["only_build_toc_files"] is True
    execute = config["execute"]
    assert execute["execute_notebooks"] == "cache"
    assert execute["timeout"] == CELL_TIMEOUT_S
    assert execute["allow_errors"] is False
    assert "solutions" in config["exclude_patterns"]
    extensions = config["sphinx"]["config"]["extensions"]
    assert "sphinx_thebe" not in extensions, "sphinx_thebe writes a CDN <script> into every page"
    assert "sphinx.ext.intersphinx" not in extensions, "intersphinx downloads inventories at build time"
    assert "sphinx-mathjax-offline" in extensions
    assert "sphinx_comments" in extensions, "without it comments_config is unknown and -W fails"


def test_toc_lists_front_matter_chapters_and_exercises():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    captions = [part["caption"] for part in toc["parts"]]
    assert captions == ["Start here", "Chapters and their exercises", "Back matter"]
    # each exercise right after its chapter (its one sub-page), so "Next" goes from a chapter to its exercise
    for chapter in toc["parts"][1]["chapters"]:
        number = re.match(r"chapters/(\d\d)_", chapter["file"]).group(1)
        sections = [s["file"] for s in chapter.get("sections", [])]
        assert len(sections) == 1 and sections[0].startswith(f"exercises/ex{number}_"), (chapter, sections)
    files = toc_files()
    for required in ("chapters/intro", "chapters/setup", "chapters/notation", "chapters/01_chain_rule",
                     "exercises/ex01_chain_rule/ex01_chain_rule"):
        assert required in files
    assert not any(f.startswith("solutions") for f in files)
    for f in files:
        assert (ROOT / f"{f}.md").exists() or (ROOT / f"{f}.ipynb").exists(), f"{f} is in _toc.yml but missing"


# --------------------------------------------------------------------------- the real book

def test_book_builds_with_zero_warnings(book):
    assert book.returncode == 0, f"jupyter-book build failed:\n{book.log[-5000:]}"
    assert book.warnings() == [], "\n".join(book.warnings())
    assert "build succeeded" in book.log


def test_every_toc_page_is_rendered_with_the_book_title(book):
    for f in toc_files():
        page = book.html / f"{f}.html"
        assert page.exists(), f"{f}.html was not built"
        assert "Taming Unstable Gradients" in page.read_text(encoding="utf-8")
    assert (book.html / "index.html").exists()


def test_next_leads_from_each_chapter_to_its_exercise_and_on_to_the_next_chapter(book):
    def next_page(page: Path) -> Path:
        found = re.search(r'<a class="right-next"\s+href="([^"]+)"', page.read_text(encoding="utf-8"))
        assert found, f"{page.name} has no Next link"
        return (page.parent / found.group(1)).resolve()

    chapters = [f for f in toc_files() if re.match(r"chapters/\d\d_", f)]
    for i, chapter in enumerate(chapters):
        exercise = next_page(book.html / f"{chapter}.html")
        assert exercise.name.startswith(f"ex{chapter[9:11]}_"), (chapter, exercise)
        if i + 1 < len(chapters):
            assert next_page(exercise) == (book.html / f"{chapters[i + 1]}.html").resolve()


def test_links_to_a_chapter_carry_its_number(book):
    # {doc}`01_chain_rule` without an explicit text (chapters/_ext/chapter_links.py)
    intro = page_text(book.html / "chapters" / "intro.html")
    for number, title in ((1, "The chain rule through depth"), (2, "Saturation"), (5, "Gradient clipping")):
        assert f"Chapter {number}: {title}" in intro, f"the intro's link to chapter {number} has no number"
    assert "Chapter 1: The chain rule through depth" in page_text(book.html / "chapters" / "02_saturation.html")


def test_chapters_show_their_committed_figures(book):
    for chapter in sorted((ROOT / "chapters").glob("*.ipynb")):
        page = book.html / "chapters" / f"{chapter.stem}.html"
        images = re.findall(r'<img[^>]+src="([^"]+\.png)"', page.read_text(encoding="utf-8"))
        assert images, f"{chapter.stem} shows no figure"
        for src in images:
            assert (page.parent / src).resolve().exists(), src


# A page "loads" a URL when the browser fetches it without a click: scripts, stylesheets and other
# <link>s (preload, icon, ...), images, frames, media; and url()/@import inside CSS. <a href> is fine.
LOADING_ATTR = re.compile(
    r"<(?:script|img|iframe|source|video|audio|embed|track|input)\b[^>]*?\s(?:src|srcset|data|poster)"
    r"\s*=\s*[\"']?\s*((?:https?:)?//[^\"'\s>]+)"
    r"|<link\b(?=[^>]*?\shref\s*=\s*[\"']?\s*((?:https?:)?//[^\"'\s>]+))(?![^>]*?\srel\s*=\s*[\"']?"
    r"(?:canonical|next|prev|search|index|author|license|alternate)\b)[^>]*>"
    r"|<object\b[^>]*?\sdata\s*=\s*[\"']?\s*((?:https?:)?//[^\"'\s>]+)",
    re.I | re.S,
)
CSS_REMOTE = re.compile(r"url\(\s*[\"']?\s*((?:https?:)?//[^)\"']+)|@import\s+[\"']((?:https?:)?//[^\"']+)", re.I)


def test_loading_url_detector_catches_remote_assets():
    page = """<script src="https://cdn.example/x.js"></script>
              <link rel="stylesheet" href="//fonts.example/a.css">
              <img alt="" src='http://example.org/i.png'>
              <a href="https://example.org/">a plain link is fine</a>
              <link rel="canonical" href="https://example.org/page.html" />
              <script src="../_static/local.js"></script>"""
    found = [next(g for g in m.groups() if g) for m in LOADING_ATTR.finditer(page)]
    assert found == ["https://cdn.example/x.js", "//fonts.example/a.css", "http://example.org/i.png"]
    css = "a{background:url('https://x.example/f.woff2')} @import \"//x.example/s.css\"; b{src:url(f.woff)}"
    assert [next(g for g in m.groups() if g) for m in CSS_REMOTE.finditer(css)] == [
        "https://x.example/f.woff2", "//x.example/s.css"]


def test_no_page_loads_anything_from_the_network(book):
    offenders = []
    for page in html_pages(book):
        text = page.read_text(encoding="utf-8")
        # inline <style> blocks count as CSS
        for style in re.findall(r"<style\b[^>]*>(.*?)</style>", text, flags=re.S | re.I):
            offenders += [(page, m.group(0)) for m in CSS_REMOTE.finditer(style)]
        offenders += [(page, m.group(0)[:120]) for m in LOADING_ATTR.finditer(text)]
    for css in book.html.rglob("*.css"):
        offenders += [(css, m.group(0)) for m in CSS_REMOTE.finditer(css.read_text(encoding="utf-8"))]
    assert offenders == [], "\n".join(f"{p.relative_to(book.html)}: {u}" for p, u in offenders)


def test_math_is_typeset_by_bundled_mathjax(book):
    chapter = (book.html / "chapters" / "01_chain_rule.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', chapter, flags=re.I)
    assert scripts == ["../_static/mathjax/tex-chtml.js"], scripts
    assert (book.html / "_static" / "mathjax" / "tex-chtml.js").exists()
    # the CommonHTML fonts MathJax fetches relative to its own location
    assert list((book.html / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert "thebe" not in chapter.lower()
    assert "\\prod" in chapter or "\\frac" in chapter, "chapter 1 has no display math to typeset"


def test_search_works_offline(book):
    search = (book.html / "search.html").read_text(encoding="utf-8")
    assert re.search(r'src="_static/searchtools\.js', search)
    assert re.search(r'src="searchindex\.js', search)
    index = (book.html / "searchindex.js").read_text(encoding="utf-8")
    assert index.startswith("Search.setIndex(")
    index = json.loads(index[len("Search.setIndex("):-1])
    docnames = index["docnames"]

    def documents(stem):
        # Sphinx stores stemmed words ("notation" -> "notat"); a word in a page's titles is filed
        # under "titleterms" for that page instead of "terms"
        found = set()
        for table in ("terms", "titleterms"):
            hits = index[table].get(stem, [])
            found.update(hits if isinstance(hits, list) else [hits])
        return {docnames[i] for i in found}

    for stem, doc in [("jacobian", "chapters/01_chain_rule"), ("spectral", "chapters/01_chain_rule"),
                      ("taylor", "chapters/01_chain_rule"), ("jupyterlab", "chapters/setup"),
                      ("notat", "chapters/notation")]:
        assert doc in documents(stem), f"searching {stem!r} does not find {doc}"


def test_solutions_and_hidden_tests_never_reach_the_book(book):
    assert not (book.html / "solutions").exists()
    assert not (book.html / "_sources" / "solutions").exists()
    leaks = []
    for path in book.html.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".js", ".ipynb", ".md", ".txt", ".json", ".py"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            leaks += [(path, m) for m in SOLUTION_MARKERS if m in text]
    assert leaks == [], "\n".join(f"{p.relative_to(book.html)}: {m}" for p, m in leaks)

    # No line of solution code appears on an exercise page.
    exercise_pages = [book.html / f"{f}.html" for f in toc_files() if f.startswith("exercises/")]
    visible = "\n".join(page_text(p) for p in exercise_pages)
    visible_sources = "\n".join(
        p.read_text(encoding="utf-8") for p in (book.html / "_sources").rglob("*.ipynb") if "exercises" in p.parts)
    checked = 0
    for source in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        for cell in nbformat.read(source, as_version=4).cells:
            for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, flags=re.S):
                for line in block.splitlines():
                    line = line.strip()
                    if len(line) >= 20 and not line.startswith("#"):
                        checked += 1
                        assert line not in visible, f"solution line shown in the book: {line!r}"
                        assert line not in visible_sources, f"solution line in a downloadable source: {line!r}"
    if list((ROOT / "solutions").glob("*/*.ipynb")):
        assert checked > 0, "no solution lines found: has the nbgrader solution marker changed?"


# --------------------------------------------------------------------------- chapter notebooks (no build)

CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def test_every_chapter_and_exercise_is_in_the_toc():
    # only_build_toc_files: a page missing from _toc.yml would silently not be built
    listed = set(toc_files())
    for path in CHAPTERS + sorted((ROOT / "exercises").glob("*/*.ipynb")):
        assert path.relative_to(ROOT).with_suffix("").as_posix() in listed, f"{path.name} is not in _toc.yml"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_outputs_are_committed_and_machine_independent(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    hidden = [c for c in code if {"remove-cell", "remove-input"} & set(c.metadata.get("tags", []))]
    assert hidden, "numbers in the prose must be checked by hidden (remove-cell) assert cells"
    assert any("assert" in c.source for c in hidden)
    assert all(c.execution_count is not None for c in code), "execute the chapter and commit its outputs"
    # nbconvert records when each cell ran: a timestamp per cell is noise in every diff and says nothing
    timed = [i for i, c in enumerate(code) if "execution" in c.metadata]
    assert not timed, f"code cells {timed} carry execution timestamps (metadata.execution): strip them"
    for i, cell in enumerate(code):
        for out in cell.outputs:
            assert out.output_type != "error", f"code cell {i} has an error output"
            text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
            assert not re.search(r"0x[0-9a-fA-F]{6,}", text), f"code cell {i} prints a memory address: {text!r}"
            assert "array([" not in text, f"code cell {i} prints a raw float array; print rounded figures"
            assert not re.search(r"\d+(\.\d+)? ?(ms|µs|us|s)\b.*(per loop|elapsed)|Wall time", text), (
                f"code cell {i} prints a timing")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_hidden_cells_are_hidden_in_the_book(book, path):
    page = page_text(book.html / "chapters" / f"{path.stem}.html")
    for cell in nbformat.read(path, as_version=4).cells:
        if "remove-cell" in cell.metadata.get("tags", []):
            for line in cell.source.splitlines():
                if line.strip().startswith("assert"):
                    assert line.strip() not in page, f"a hidden assert is visible in the book: {line!r}"


# --------------------------------------------------------------------------- fixture books

@pytest.fixture(scope="session")
def fixture_book(tmp_path_factory) -> Path:
    """A tiny book with the real _config.yml: one chapter notebook, and an exercise whose cell raises."""
    path = tmp_path_factory.mktemp("fixture_book")
    shutil.copy2(ROOT / "_config.yml", path / "_config.yml")
    for assets in ("_static", "_root", "_ext"):     # the stylesheet, script, icons and extension it names
        shutil.copytree(ROOT / "chapters" / assets, path / "chapters" / assets)
    shutil.copy2(ROOT / "chapters" / "references.bib", path / "chapters" / "references.bib")   # bibtex_bibfiles
    (path / "chapters" / "intro.md").write_text("# Fixture\n\nA fixture book.\n")
    nbformat.write(make_notebook([("md", "# Good chapter"), ("code", "print(6 * 7)")]),
                   path / "chapters" / "good.ipynb")
    (path / "exercises" / "exfix").mkdir(parents=True)
    nbformat.write(make_notebook([("md", "# Exercise"), ("code", "raise NotImplementedError()")]),
                   path / "exercises" / "exfix" / "exfix.ipynb")
    return path


def write_toc(path: Path, chapters: list[str]) -> None:
    toc = {"format": "jb-book", "root": "chapters/intro",
           "parts": [{"caption": "Chapters", "chapters": [{"file": c} for c in chapters]},
                     {"caption": "Exercises", "chapters": [{"file": "exercises/exfix/exfix"}]}]}
    (path / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))


def test_fixture_book_executes_chapters_but_not_exercises(fixture_book, pycache):
    write_toc(fixture_book, ["chapters/good"])
    build = jupyter_book_build(fixture_book, pycache)
    assert build.returncode == 0, build.log[-3000:]
    assert build.warnings() == [], "\n".join(build.warnings())
    assert re.search(r"chapters/good\.ipynb: Executed notebook", build.log), build.log[-3000:]
    assert re.search(r"exercises/exfix/exfix\.ipynb: Excluded from execution by pattern", build.log)
    assert "42" in page_text(fixture_book / "_build" / "html" / "chapters" / "good.html")
    exercise = page_text(fixture_book / "_build" / "html" / "exercises" / "exfix" / "exfix.html")
    assert "raise NotImplementedError()" in exercise
    assert "Traceback" not in exercise

    # `make book` again with nothing changed: incremental, execution served from the cache.
    rebuild = jupyter_book_build(fixture_book, pycache, all_files=False)
    assert rebuild.returncode == 0, rebuild.log[-3000:]
    assert rebuild.warnings() == [], "\n".join(rebuild.warnings())
    assert "Executing notebook" not in rebuild.log, "an unchanged notebook was executed again"


def make_book(path: Path, pycache: Path) -> Build:
    """Run the Makefile's own ``book`` recipe in ``path`` (its set-up step skipped: the venv is this one)."""
    cmd = ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-o", "setup", "book"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=path, env=_env(pycache), capture_output=True, text=True, timeout=600)
    return Build(path, proc.returncode, ANSI.sub("", proc.stdout + "\n" + proc.stderr),
                 time.perf_counter() - start)


def test_a_cell_error_in_a_chapter_fails_every_make_book(fixture_book, pycache):
    """A cell error fails ``make book``, and fails it again on the next run, until the chapter is fixed.

    A failed execution is not cached, but Sphinx alone would skip the unchanged page on the next build and
    print "build succeeded"; the recipe drops Sphinx's saved state after a failure to prevent that."""
    bad = fixture_book / "chapters" / "bad.ipynb"
    nbformat.write(make_notebook([("md", "# Bad chapter"),
                                  ("code", "raise RuntimeError('chapter cell failed on purpose')")]), bad)
    write_toc(fixture_book, ["chapters/good", "chapters/bad"])
    try:
        builds = [make_book(fixture_book, pycache) for _ in range(2)]
        report = (fixture_book / "_build" / "reports" / "chapters" / "bad.err.log").read_text()
        assert not (fixture_book / "_build" / "html" / "reports").exists(), "build logs must not be published"
        nbformat.write(make_notebook([("md", "# Bad chapter, fixed"), ("code", "print('fixed')")]), bad)
        fixed = make_book(fixture_book, pycache)
        again = make_book(fixture_book, pycache)
    finally:
        write_toc(fixture_book, ["chapters/good"])
        bad.unlink()
    for n, build in enumerate(builds, 1):
        assert build.returncode != 0, f"make book number {n} after a failing chapter exited 0:\n{build.log[-3000:]}"
        assert any("bad.ipynb" in w and "Executing notebook failed" in w for w in build.warnings()), build.log[-3000:]
        assert "make book FAILED" in build.log
    assert "chapter cell failed on purpose" in report, "the traceback report names the error"
    # the chapter that executed successfully is served from the execution cache, even on the re-read
    assert not re.search(r"good\.ipynb: Executing notebook", builds[1].log), builds[1].log[-3000:]
    # once fixed, the book builds, and a build with nothing changed stays incremental and green
    assert fixed.returncode == 0 and fixed.warnings() == [], fixed.log[-3000:]
    assert again.returncode == 0 and "Executing notebook" not in again.log, again.log[-3000:]
