"""The ``listing`` directive: the core lines of a package function, with its full source one click away.

    ```{listing} ../src/stablegrad/normalization.py
    :pyobject: _batchnorm_forward
    :full: batchnorm_forward _batchnorm_forward
    ```

shows ``_batchnorm_forward`` without its docstring (the numpydoc text, with its reST markup, is for the API
reader; the chapter's prose already says what the function computes), then a closed dropdown "Full source"
holding each object named by ``:full:`` (default: the ``:pyobject:`` itself) exactly as ``literalinclude``
shows it, docstring and argument checks included. ``:start-at: text`` also leaves out the body before the
first line containing ``text`` (the argument checks), with a ``...`` line in its place. The code is read
from the package file at build time, so the book and the package cannot drift.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def find_object(tree: ast.Module, dotted: str):
    """The function or class ``a.b`` (a method ``b`` of class ``a``) in ``tree``, or None."""
    scope = tree.body
    found = None
    for part in dotted.split("."):
        found = next((node for node in scope
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and node.name == part), None)
        if found is None:
            return None
        scope = found.body
    return found


def without_docstring(source: str, dotted: str, start_at: str | None = None) -> str:
    """The source of ``dotted`` (decorators included) with its docstring removed, dedented.

    With ``start_at``, the body before the first line containing that text (the argument checks) is
    replaced by one ``...`` line that says where to find it."""
    tree = ast.parse(source)
    node = find_object(tree, dotted)
    if node is None:
        raise ValueError(f"no function or class {dotted!r}")
    lines = source.splitlines()
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    keep = list(range(start, node.end_lineno))
    body = node.body
    first = body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        doc = set(range(first.lineno - 1, first.end_lineno))
        keep = [i for i in keep if i not in doc]
        body = body[1:]
    if start_at is not None:
        first_body = body[0].lineno - 1 if body else node.end_lineno
        at = next((i for i in keep if i >= first_body and start_at in lines[i]), None)
        if at is None:
            raise ValueError(f"{dotted}: no line contains {start_at!r}")
        indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
        head = [lines[i] for i in keep if i < first_body]
        tail = [lines[i] for i in keep if i >= at]
        return textwrap.dedent("\n".join(head + [f"{indent}...  # argument checks: in the full source"] + tail)
                               ).rstrip() + "\n"
    return textwrap.dedent("\n".join(lines[i] for i in keep)).rstrip() + "\n"


class Listing(SphinxDirective):
    required_arguments = 1
    has_content = False
    option_spec = {"pyobject": directives.unchanged_required, "full": directives.unchanged,
                   "start-at": directives.unchanged_required}

    def run(self):
        relative = self.arguments[0]
        _, path = self.env.relfn2path(relative)
        self.env.note_dependency(path)
        dotted = self.options["pyobject"]
        try:
            code = without_docstring(Path(path).read_text(encoding="utf-8"), dotted, self.options.get("start-at"))
        except (OSError, SyntaxError, ValueError) as exc:
            raise self.error(f"listing: {relative}: {exc}") from exc
        block = nodes.literal_block(code, code, language="python")
        block["classes"].append("listing-core")
        self.set_source_info(block)

        full = (self.options.get("full") or dotted).split()
        module = Path(relative).stem
        title = ", ".join(f"`{module}.{name}`" for name in full)
        # a colon fence: a backtick fence's info string may not hold the backticks of the title
        markdown = [f":::{{dropdown}} Full source: {title} (docstring and checks included)"]
        for name in full:
            markdown += [f"```{{literalinclude}} {relative}", ":language: python", f":pyobject: {name}", "```"]
        markdown.append(":::")
        container = nodes.container(classes=["listing"])
        self.state.nested_parse(StringList(markdown, source=self.get_source_info()[0]),
                                self.content_offset, container)
        return [block, container]


def setup(app):
    app.add_directive("listing", Listing)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
