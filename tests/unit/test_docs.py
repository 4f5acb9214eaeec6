"""The operator docs in doc/source parse, and the index lists them all."""

import os

import docutils.core
import docutils.nodes
from docutils.parsers.rst import Directive
from docutils.parsers.rst import directives
from docutils.parsers.rst import roles
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DOC = os.path.join(REPO, 'doc', 'source')
PAGES = sorted(f for f in os.listdir(DOC) if f.endswith('.rst'))


class _Toctree(Directive):
    """Sphinx's toctree, for plain docutils: its entries, nothing else."""
    has_content = True
    option_spec = {'maxdepth': directives.unchanged}

    def run(self):
        return [docutils.nodes.comment('', '\n'.join(self.content))]


directives.register_directive('toctree', _Toctree)
roles.register_generic_role('doc', docutils.nodes.emphasis)


@pytest.mark.parametrize('page', PAGES)
def test_page_parses_without_warnings(page):
    with open(os.path.join(DOC, page)) as f:
        docutils.core.publish_doctree(f.read(), settings_overrides={
            'report_level': 2, 'halt_level': 2})


def test_index_lists_every_page():
    with open(os.path.join(DOC, 'index.rst')) as f:
        text = f.read()
    listed = text.split('.. toctree::', 1)[1].split()
    assert sorted(p[:-4] for p in PAGES if p != 'index.rst') == sorted(
        w for w in listed if not w.startswith(':') and not w.isdigit())
