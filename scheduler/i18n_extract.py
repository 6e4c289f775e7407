"""A pybabel extractor (babel.cfg) for scheduler/errors.py: each domain error's docstring is the message
it carries when raised without one, and refusals.py shows it translated."""

from __future__ import annotations

import ast

from babel.messages.extract import extract_python


def extract_errors(fileobj, keywords, comment_tags, options):
    """The messages of extract_python, and the first line of every class docstring."""
    source = fileobj.read()
    for tree_class in ast.walk(ast.parse(source)):
        if isinstance(tree_class, ast.ClassDef):
            doc = ast.get_docstring(tree_class)
            if doc:
                yield tree_class.lineno, None, doc.strip(), []
    fileobj.seek(0)
    yield from extract_python(fileobj, keywords, comment_tags, options)
