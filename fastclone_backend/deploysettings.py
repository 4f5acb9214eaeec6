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

"""The nova.conf and glance-api.conf settings a fastrbd deployment needs.

One list, read by everything that writes those files: the devstack plugin
(``devstack/lib/fastclone-backend``, through ``lines`` and devstack's
``iniset``), the lab's Glance (``tools/lab``, through ``apply``) and the
nova.conf the functional tests parse (:mod:`fastclone_lab.novadisk`,
through :func:`render`).  Values are templates over a few facts of the
deployment (``{vms_pool}``...); everything else in those files belongs to
the deployment.

Standard library only: ``tools/lab`` runs this file with the system
``python3`` before any virtualenv exists::

    python3 fastclone_backend/deploysettings.py lines nova-compute \\
        --set vms_pool=vms --set ...
    python3 fastclone_backend/deploysettings.py apply glance-api FILE ...
"""

import argparse
import string
import sys
import typing

NOVA_COMPUTE = 'nova-compute'  # the config nova-compute(-fastrbd) reads
GLANCE_API = 'glance-api'      # glance-api.conf


class Setting(typing.NamedTuple):
    target: str
    section: str
    option: str
    value: str


SETTINGS = (
    Setting(NOVA_COMPUTE, 'libvirt', 'images_type', 'fastrbd'),
    Setting(NOVA_COMPUTE, 'libvirt', 'images_rbd_pool', '{vms_pool}'),
    Setting(NOVA_COMPUTE, 'libvirt', 'images_rbd_ceph_conf', '{ceph_conf}'),
    Setting(NOVA_COMPUTE, 'libvirt', 'rbd_user', '{nova_user}'),
    Setting(NOVA_COMPUTE, 'fastclone', 'clone_allowed_pools',
            '{images_pool}'),
    # the image record then carries its rbd:// location (direct_url)
    Setting(GLANCE_API, 'DEFAULT', 'show_image_direct_url', 'True'),
    Setting(GLANCE_API, '{rbd_store_section}', 'rbd_store_pool',
            '{images_pool}'),
    Setting(GLANCE_API, '{rbd_store_section}', 'rbd_store_user',
            '{glance_user}'),
    Setting(GLANCE_API, '{rbd_store_section}', 'rbd_store_ceph_conf',
            '{ceph_conf}'),
)

TARGETS = (NOVA_COMPUTE, GLANCE_API)


def _fields(template: str) -> set:
    return {name for _, name, _, _ in string.Formatter().parse(template)
            if name}


def facts_needed(target: str) -> set:
    """The names target's templates use."""
    needed = set()
    for s in SETTINGS:
        if s.target == target:
            needed |= _fields(s.section) | _fields(s.value)
    return needed


def _check_facts(target, facts):
    if target not in TARGETS:
        raise ValueError('unknown target %r (one of %s)'
                         % (target, ', '.join(TARGETS)))
    missing = sorted(facts_needed(target) - set(facts))
    if missing:
        raise ValueError('%s settings need %s' % (target, ', '.join(missing)))
    for name, value in facts.items():
        if not value or any(c in value for c in '\t\r\n'):
            raise ValueError('fact %s=%r: empty, or a tab or newline'
                             % (name, value))


def render(target: str, facts: dict) -> list:
    """[(section, option, value)] for target, in SETTINGS order."""
    _check_facts(target, facts)
    rendered = [(s.section.format(**facts), s.option,
                 s.value.format(**facts))
                for s in SETTINGS if s.target == target]
    for section, _, _ in rendered:
        if '[' in section or ']' in section:
            raise ValueError('section name %r has a bracket' % section)
    return rendered


def ini_text(rendered: list) -> str:
    """The rendered settings as ini text, one block per section."""
    sections = {}
    for section, option, value in rendered:
        sections.setdefault(section, []).append('%s = %s' % (option, value))
    return ''.join('[%s]\n%s\n' % (section, '\n'.join(lines))
                   for section, lines in sections.items())


def _section_of(line):
    stripped = line.strip()
    if stripped.startswith('[') and stripped.endswith(']'):
        return stripped[1:-1].strip()
    return None


def set_option(lines: list, section: str, option: str, value: str) -> list:
    """lines with option set in section, as devstack's ``iniset`` does.

    An existing ``option = ...`` line of the section is replaced; else the
    option goes at the end of the section's first block, or in a new section
    at the end.
    """
    new = '%s = %s\n' % (option, value)
    out = list(lines)
    start = next((i for i, line in enumerate(out)
                  if _section_of(line) == section), None)
    if start is None:
        if out and not out[-1].endswith('\n'):
            out[-1] += '\n'
        return out + ['[%s]\n' % section, new]
    end = next((i for i in range(start + 1, len(out))
                if _section_of(out[i]) is not None), len(out))
    for i in range(start + 1, end):
        if out[i].split('=', 1)[0].strip() == option and '=' in out[i]:
            out[i] = new
            return out
    while end > start + 1 and not out[end - 1].strip():
        end -= 1
    if not out[end - 1].endswith('\n'):
        out[end - 1] += '\n'
    return out[:end] + [new] + out[end:]


def apply(path: str, rendered: list) -> None:
    """Set every rendered setting in the ini file at path."""
    with open(path) as f:
        lines = f.readlines()
    for section, option, value in rendered:
        lines = set_option(lines, section, option, value)
    with open(path, 'w') as f:
        f.writelines(lines)


def _fact(text):
    name, sep, value = text.partition('=')
    if not sep or not name:
        raise argparse.ArgumentTypeError('expected NAME=VALUE, got %r' % text)
    return name, value


def _parser():
    parser = argparse.ArgumentParser(
        prog='deploysettings', description='The nova.conf and '
        'glance-api.conf settings of a fastrbd deployment.')
    sub = parser.add_subparsers(dest='command', required=True)
    for name, help_ in (('lines', 'print SECTION<TAB>OPTION<TAB>VALUE lines'),
                        ('ini', 'print the settings as ini text'),
                        ('apply', 'set them in an ini file'),
                        ('facts', 'print the facts the settings need')):
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument('target', choices=TARGETS)
        if name == 'apply':
            cmd.add_argument('file')
        if name != 'facts':
            cmd.add_argument('--set', dest='facts', action='append',
                             type=_fact, default=[], metavar='NAME=VALUE')
    return parser


def main(argv=None, out=sys.stdout):
    args = _parser().parse_args(argv)
    if args.command == 'facts':
        out.write(''.join('%s\n' % n for n in sorted(facts_needed(
            args.target))))
        return 0
    try:
        rendered = render(args.target, dict(args.facts))
    except ValueError as e:
        sys.stderr.write('deploysettings: %s\n' % e)
        return 2
    if args.command == 'lines':
        out.write(''.join('%s\t%s\t%s\n' % r for r in rendered))
    elif args.command == 'ini':
        out.write(ini_text(rendered))
    else:
        apply(args.file, rendered)
    return 0


if __name__ == '__main__':
    sys.exit(main())
