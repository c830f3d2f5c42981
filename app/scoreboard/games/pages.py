"""Pages rendered once and served by every host: the values of the hot cache entries.

A cached page is rendered by whichever process recomputes it (a request on any host, or
``refresh_hot_cache``) and served as is by all hosts, so it must not depend on the request or on
the host that rendered it:

* the templates use nothing of the request (no CSRF token, no request host, path or user) and are
  rendered without one, with the script prefix of the site mounted at ``/`` (or at
  ``FORCE_SCRIPT_NAME``), so ``{% url %}`` gives the same links in a request and out of band;
* the values of the ``site`` context processor (``release`` and ``served_by``: the serving
  host's) are rendered as slots, ``<!--slot:NAME-->``, which the serving process fills with its
  own values, escaped as the template would have escaped them. Autoescaping turns every ``<`` of
  the data into ``&lt;``, so only the template can produce a slot. Templates use those values
  unfiltered; a slot this process has no value for (a name from another release) is left empty.

A stored page is a tuple of UTF-8 byte strings, text and slot names alternating:
``(text, name, text, ..., text)``, about the size of the page (35 kB for the demo's default data).
"""

import re
from contextlib import contextmanager

from django.conf import settings
from django.template import Context
from django.template.base import render_value_in_context
from django.template.loader import render_to_string
from django.urls import get_script_prefix, set_script_prefix
from django.utils.safestring import mark_safe

from scoreboard.games.context_processors import site

SLOT_NAMES = tuple(site(None))
SLOT = re.compile(rb"<!--slot:(" + b"|".join(name.encode() for name in SLOT_NAMES) + rb")-->")


def render_page(template_name, data):
    """Render ``template_name`` with ``data`` (as ``data``) into a page with slots."""
    context = {name: mark_safe(f"<!--slot:{name}-->") for name in SLOT_NAMES}
    context["data"] = data
    with _site_script_prefix():
        html = render_to_string(template_name, context)
    return tuple(SLOT.split(html.encode()))


def fill(page, request):
    """The page's bytes with its slots filled with this process's values for ``request``."""
    values = {
        name.encode(): render_value_in_context(value, Context()).encode()
        for name, value in site(request).items()
    }
    return b"".join(values.get(part, b"") if index % 2 else part for index, part in enumerate(page))


@contextmanager
def _site_script_prefix():
    previous = get_script_prefix()
    forced = settings.FORCE_SCRIPT_NAME
    set_script_prefix("/" if forced is None else forced)
    try:
        yield
    finally:
        set_script_prefix(previous)
