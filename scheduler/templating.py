"""The Jinja environment and each render's context: what every page costs before its own content."""

from __future__ import annotations

from flask import Flask
from flask import templating as flask_templating


class Environment(flask_templating.Environment):
    """Flask's environment, whose templates read the environment's globals directly.

    Jinja gives each template a ChainMap of its own globals (Townhall passes none) over the
    environment's, and every render copies that key by key into its context: some 25 lookups, each
    first missing the empty map. Without template globals the environment's dict is the same
    mapping, copied in one C call; changes to it still reach every template.
    """

    def make_globals(self, d):
        return self.globals if not d else super().make_globals(d)

    def _load_template(self, name, globals):
        # Jinja updates a cached template's globals in place with those given here: that map must be
        # the template's own (a ChainMap over the environment's, as Jinja makes it), not the environment's.
        template = super()._load_template(name, None)
        if globals:
            if template.globals is self.globals:
                template.globals = super().make_globals(None)
            template.globals.update(globals)
        return template


def trim_context_processors(app: Flask) -> None:
    """Drop context processors that only repeat what every render has already: each is a call per page.

    Flask registers its default processor (g, request, session) with every blueprint as well as the
    app, so a blueprint's page ran it twice; Flask-WTF's returns the very functions it also sets as
    globals (csrf_token, csrf_meta_tag).
    """
    default = getattr(flask_templating, "_default_template_ctx_processor", None)
    for key, processors in app.template_context_processors.items():
        processors[:] = [p for p in processors if not (key is not None and p is default)
                         and getattr(p, "__module__", None) != "flask_wtf.csrf"]
