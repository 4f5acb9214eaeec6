#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""The Nova releases fastclone-backend runs with, and the start-up gate.

fastclone-backend never pins Nova (requirements.txt has no ``nova`` line):
it is installed into an operator's Nova environment and runs with the Nova
that is there.  It relies on Nova internals (:mod:`fastclone_backend.hook`),
so the entry points check the installed release first and refuse, with one
line, a release outside :data:`SERIES`.  Reading the version does not
import Nova (``importlib.metadata``), so nova-compute's own start-up
(eventlet monkey patching) is untouched and nothing of Nova runs on refusal.
"""

import dataclasses
import importlib.metadata

# Nova's major version -> its OpenStack series; every one is tested per
# release (tox envs nova31 .. nova34, doc/source/releases.rst).
SERIES = {31: '2025.1', 32: '2025.2', 33: '2026.1', 34: '2026.2'}
FIRST = min(SERIES)
LAST = max(SERIES)

# What each release is tested with, as doctor and the docs say it.
TESTED = {
    31: 'unit suite, Nova 31\'s RbdTestCase and the Nova-actions suite '
        '(eventlet: Nova 31 has no native threads)',
    32: 'unit suite, Nova 32\'s RbdTestCase and the Nova-actions suite '
        '(eventlet: Nova 32\'s nova-compute has no native threads)',
    33: 'unit suite, Nova 33\'s RbdTestCase and the Nova-actions suite '
        '(eventlet; nova-compute\'s native threads, experimental in Nova 33, '
        'are not: Nova 33\'s functional base runs on eventlet only)',
    34: 'unit suite, Nova 34\'s RbdTestCase and the Nova-actions suite '
        '(native threads and eventlet)',
}


# What each release's nova-compute runs on, its default first (Nova's
# doc/source/admin/concurrency.rst and release notes): eventlet only on 31
# and 32 (32's OS_NOVA_DISABLE_EVENTLET_PATCHING=1 is for nova-api,
# -scheduler and -metadata only); on 33 eventlet, and native threads on
# request (=1, experimental); on 34 native threads, and eventlet on
# request (=0).
CONCURRENCY = {31: ('eventlet',), 32: ('eventlet',),
               33: ('eventlet', 'threading'), 34: ('threading', 'eventlet')}

# The modes the Nova-actions suite runs in (Nova's own functional base,
# tests/functional/novaactionshost.py): Nova's functional test fixtures run
# on native threads from 34 only (its notifier fixture walks eventlet's
# greenlets, its databases are in-memory SQLite shared across threads
# before; Nova itself runs its functional tests threaded from 34).
ACTIONS_MODES = {31: ('eventlet',), 32: ('eventlet',), 33: ('eventlet',),
                 34: ('threading', 'eventlet')}


def concurrency_modes(version: str) -> tuple:
    """The modes this Nova version's nova-compute runs in, default first.

    ('eventlet',) for '31.3.1'; () for a release outside :data:`SERIES`.
    """
    return CONCURRENCY.get(major_of(version), ())


def actions_modes(version: str) -> tuple:
    """The modes the Nova-actions suite runs in on this Nova version.

    ('eventlet',) for '33.0.2'; () for a release outside :data:`SERIES`.
    """
    return ACTIONS_MODES.get(major_of(version), ())


MODE_NAMES = {'eventlet': 'eventlet', 'threading': 'native threads'}


def actions_mode_gap(version: str, mode: str) -> str | None:
    """Why the Nova-actions suite does not run in mode here, or None.

    "Nova 33.0.2's functional test base has no native threads".
    """
    if mode in actions_modes(version):
        return None
    what = ('nova-compute' if mode not in concurrency_modes(version)
            else 'functional test base')
    return 'Nova %s\'s %s has no %s' % (version, what,
                                        MODE_NAMES.get(mode, mode))


@dataclasses.dataclass(frozen=True)
class Support:
    version: str
    major: int | None
    supported: bool
    level: str


def major_of(version: str) -> int | None:
    """31 for '31.3.1'; None for what is not a Nova version."""
    head = version.split('.', 1)[0]
    return int(head) if head.isdigit() else None


def support(version: str) -> Support:
    """What fastclone-backend says of this Nova version."""
    major = major_of(version)
    if major in SERIES:
        return Support(version, major, True, 'supported (%s series), '
                       'tested: %s' % (SERIES[major], TESTED[major]))
    if major is not None and major < FIRST:
        why = ('older than Nova %d (%s), the first release fastclone-backend '
               'runs with' % (FIRST, SERIES[FIRST]))
    elif major is not None:
        why = ('newer than Nova %d (%s), the last release fastclone-backend '
               'is tested with' % (LAST, SERIES[LAST]))
    else:
        why = ('not a Nova release number (fastclone-backend runs with Nova '
               '%d to %d)' % (FIRST, LAST))
    return Support(version, major, False, 'not supported: ' + why)


def installed_version() -> str | None:
    """The installed nova distribution's version, without importing it."""
    try:
        return importlib.metadata.version('nova')
    except importlib.metadata.PackageNotFoundError:
        return None


def refusal(program: str, version: str | None, outcome: str) -> str | None:
    """The one line a program prints instead of starting, or None.

    :param outcome: what does not happen, e.g. 'nova-compute not started'.
    """
    if version is None:
        return ('%s: no Nova is installed for %s; fastclone-backend runs '
                'inside Nova %d to %d; %s'
                % (program, _python(), FIRST, LAST, outcome))
    found = support(version)
    if found.supported:
        return None
    return '%s: Nova %s is %s; %s' % (program, version, found.level, outcome)


def _python() -> str:
    import sys
    return sys.executable


_lacking_said = set()


def lacking(feature: str, first: int, then: str) -> None:
    """Say once per process, as a WARNING, what this Nova release lacks.

    :param feature: what is missing, e.g. 'nova.context.X'.
    :param first: the first Nova major release that brings it.
    :param then: what fastclone-backend does without it.
    """
    if feature in _lacking_said:
        return
    _lacking_said.add(feature)
    from oslo_log import log as logging   # not at import: see the docstring
    logging.getLogger(__name__).warning(
        'Nova %(version)s has no %(feature)s (Nova %(first)d, %(series)s, '
        'brings it): %(then)s',
        {'version': installed_version(), 'feature': feature, 'first': first,
         'series': SERIES.get(first, '?'), 'then': then})
