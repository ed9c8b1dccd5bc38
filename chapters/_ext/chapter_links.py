"""Links to a chapter carry its number: {doc}`01_chain_rule` reads "Chapter 1: The chain rule through depth".

Sphinx numbers the chapters in the sidebar and in their titles (``numbered: true`` in _toc.yml) but a
``{doc}`` link shows the bare title. This post-transform runs before Sphinx resolves the links and, for a
link without an explicit text to a document that has a one-level section number, writes the text
"Chapter N: <title>". Explicit texts ({doc}`this chapter <01_chain_rule>`) are left alone.
"""

from __future__ import annotations

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import docname_join


class NumberChapterLinks(SphinxPostTransform):
    default_priority = 5          # before sphinx's ReferencesResolver (10) turns the link into a reference

    def run(self, **kwargs) -> None:
        for node in self.document.findall(addnodes.pending_xref):
            if node.get("reftype") != "doc" or node.get("refexplicit"):
                continue
            target = docname_join(node.get("refdoc", self.env.docname), node["reftarget"])
            number = self.env.toc_secnumbers.get(target, {}).get("")
            title = self.env.titles.get(target)
            if not number or len(number) != 1 or title is None:
                continue
            text = f"Chapter {number[0]}: {title.astext()}"
            node["refexplicit"] = True
            node.children = [nodes.inline(text, text)]


def setup(app):
    app.add_post_transform(NumberChapterLinks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
