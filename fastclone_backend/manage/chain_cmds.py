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

"""``chain show`` and ``flatten``."""

from cliff import lister
from cliff import show

from nova.storage import rbd_utils

from fastclone_backend.lifecycle import flatten
from fastclone_backend.manage import util

TARGET_HELP = ('pool/image, an instance uuid (its <uuid>_disk) or a Glance '
               'image id (its RBD image, or its cached base)')


def chain(drv, spec: str) -> list:
    """[(spec, parent snapshot spec or '', created)], spec first."""
    found = []
    seen = set()
    while spec and spec not in seen:
        seen.add(spec)
        pool, name = spec.split('/', 1)
        try:
            with rbd_utils.RBDVolumeProxy(drv, name, pool=pool,
                                          read_only=True) as vol:
                made = vol.create_timestamp()
                try:
                    ppool, pname, psnap = vol.parent_info()
                    parent = '%s/%s@%s' % (ppool, pname, psnap)
                except rbd_utils.rbd.ImageNotFound:
                    parent = ''
        except rbd_utils.rbd.ImageNotFound:
            found.append((spec, '(gone)', ''))
            break
        found.append((spec, parent, made.strftime('%Y-%m-%dT%H:%M:%SZ')))
        spec = parent.split('@')[0]
    return found


class ChainShow(lister.Lister):
    """An image's chain of parents, its depth, and flatten tasks."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('target', help=TARGET_HELP)
        return parser

    def take_action(self, parsed_args):
        drv = util.driver()
        spec = util.resolve_spec(drv, parsed_args.target)
        links = chain(drv, spec)
        try:
            tasks = flatten.in_flight(drv)
        except (flatten.MgrRefused, rbd_utils.rados.Error) as e:
            tasks = {s: 'unknown (%s)' % e for s, _p, _c in links}
        rows = [(depth, link, parent, made,
                 tasks[link] if isinstance(tasks, dict) else
                 ('queued' if link in tasks else ''))
                for depth, (link, parent, made) in enumerate(links)]
        return ('Level', 'Image', 'Parent', 'Created', 'Flatten task'), rows


class Flatten(show.ShowOne):
    """Queue a flatten of an image in the Ceph manager (rbd task add)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('target', help=TARGET_HELP)
        return parser

    def take_action(self, parsed_args):
        drv = util.driver()
        spec = util.resolve_spec(drv, parsed_args.target)
        if len(chain(drv, spec)) < 2:
            raise SystemExit('%s has no parent: nothing to flatten' % spec)
        task = flatten.submit(drv, spec)
        if task is None:
            raise SystemExit('the Ceph manager refused the flatten of %s '
                             '(see the warning above)' % spec)
        return ('image', 'task'), (spec, task)
