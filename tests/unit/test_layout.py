"""The package's tree shows the design: three flows over shared modules.

Data flows one way: the spawn flow calls into the cache flow, the lifecycle
pass calls into the cache flow, and the shared top-level modules call into
none of them.  Nova's adapters (``hook``) and the operator's commands
(``manage``, ``cmd``) sit above everything.  An import against that order
is a defect this test names.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / 'fastclone_backend'
SHARED = {'conf', 'exception', 'cluster', 'inspect', 'lease', 'liveness',
          'wake', 'deploysettings', 'releases', 'novacompat', 'glanceapi'}
# what each part may import from the package, besides itself
ALLOWED = {
    'shared': {'shared'},
    'cache': {'shared'},
    'spawn': {'shared', 'cache'},
    'lifecycle': {'shared', 'cache'},
    'hook': {'shared', 'cache', 'spawn', 'lifecycle'},
    'manage': {'shared', 'cache', 'spawn', 'lifecycle', 'hook'},
    'cmd': {'shared', 'cache', 'spawn', 'lifecycle', 'hook', 'manage'},
}


def _part(dotted: str) -> str:
    """The part of the design a module fastclone_backend.<dotted> is in."""
    head = dotted.split('.')[0]
    if head in SHARED:
        return 'shared'
    if head not in ALLOWED:
        raise AssertionError('module %s belongs to no part of the design: '
                             'add it to a flow or to SHARED' % dotted)
    return head


def _modules():
    for path in sorted(PACKAGE.rglob('*.py')):
        rel = path.relative_to(PACKAGE).with_suffix('')
        parts = [p for p in rel.parts if p != '__init__']
        if parts:
            yield '.'.join(parts), path


def _imports(path: pathlib.Path):
    """The fastclone_backend modules a file imports (dotted, unprefixed)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith('fastclone_backend'):
            base = node.module[len('fastclone_backend'):].lstrip('.')
            for alias in node.names:
                yield (base + '.' + alias.name).lstrip('.')
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('fastclone_backend.'):
                    yield alias.name[len('fastclone_backend.'):]


def test_every_module_is_in_a_part():
    parts = {name: _part(name) for name, _ in _modules()}
    assert set(parts.values()) == set(ALLOWED), parts


def test_the_top_level_holds_only_shared_modules_and_adapters():
    flat = {p.stem for p in PACKAGE.glob('*.py')} - {'__init__'}
    assert flat == SHARED | {'hook'}


@pytest.mark.parametrize('name,path', list(_modules()))
def test_imports_follow_the_flow(name, path):
    mine = _part(name)
    wrong = sorted(imp for imp in _imports(path)
                   if _part(imp) not in ALLOWED[mine] | {mine})
    assert not wrong, '%s (%s) imports %s' % (name, mine, wrong)


def test_the_check_sees_a_violation(tmp_path):
    # what basestore did before the move: the cache flow reaching up into
    # the lifecycle flow for a record type
    bad = tmp_path / 'basestore.py'
    bad.write_text('from fastclone_backend.lifecycle import policy\n'
                   'from fastclone_backend import cluster\n')
    found = {imp: _part(imp) for imp in _imports(bad)}
    assert found == {'lifecycle.policy': 'lifecycle', 'cluster': 'shared'}
    assert 'lifecycle' not in ALLOWED['cache']
