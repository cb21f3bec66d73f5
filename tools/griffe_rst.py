"""A griffe extension for the docs site: joblite's reST docstring markup as Markdown.

The docstrings are written for ``help()`` and Sphinx habits: roles like
``:class:`Memory``` and literal blocks introduced by ``Example::``. The site
renders Markdown, so roles become code spans and ``::`` a plain colon (the
indented block after it already renders as code).

Used by mkdocs.yml (``extensions: [tools/griffe_rst.py]``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj):`~?([^`]+)`")
_LITERAL_BLOCK = re.compile(r"::$", re.MULTILINE)


def to_markdown(text: str) -> str:
    """``:class:`X``` -> ```X```; a paragraph ending in ``::`` ends in ``:``.

    >>> to_markdown("See :func:`~joblite.load`. Example::")
    'See `joblite.load`. Example:'
    """
    return _LITERAL_BLOCK.sub(":", _ROLE.sub(r"`\1`", text))


class RstToMarkdown(griffe.Extension):
    """Rewrites every docstring griffe loads with :func:`to_markdown`."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
