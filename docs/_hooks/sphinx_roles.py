"""MkDocs hook: the code's docstrings use Sphinx roles (:class:`ail.errors.ConfigError`), which
Markdown renders as ':class:' before the code. Drop the role; a name the API page documents
becomes a link to it (mkdocs-autorefs resolves it; an unknown one stays plain code)."""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj|const):<code>~?([^<]+)</code>")


def on_page_content(html: str, **kwargs) -> str:
    return ROLE.sub(lambda m: f'<autoref identifier="{m[1]}" optional><code>{m[1]}</code></autoref>', html)
