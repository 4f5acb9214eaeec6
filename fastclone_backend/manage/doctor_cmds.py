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

"""``doctor`` and ``explain``."""

import logging

from cliff import lister
from cliff import show

from fastclone_backend.manage import doctor
from fastclone_backend.manage import glanceprobe
from fastclone_backend.manage import probes
from fastclone_backend.manage import util
from fastclone_backend.spawn import glancerecord
from fastclone_backend.spawn import imagepath
from fastclone_backend.spawn import location


class Doctor(lister.Lister):
    """Check everything fast clones depend on; exit 1 on any FAIL.

    Every check prints PASS, WARN or FAIL, what it saw, and the fix (the
    config line or the ceph command).  With --image, the path that one
    image's root disks would take, and why.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--image', metavar='IMAGE_ID',
                            help='explain the path of this Glance image')
        return parser

    def take_action(self, parsed_args):
        ctx = self.app.context
        # what a probe raised is its row; Nova's own logging of the same
        # error (with its traceback) would only bury the table
        logging.getLogger('nova').setLevel(logging.CRITICAL)
        if parsed_args.image:
            verdicts = glanceprobe.image_checks(ctx, parsed_args.image)
        else:
            verdicts = probes.run_all(ctx)
        self.verdicts = verdicts
        return (('Check', 'Status', 'Saw', 'Fix'),
                [(v.check, v.status, v.saw, v.fix) for v in verdicts])

    def run(self, parsed_args):
        rc = super().run(parsed_args)
        return rc or (1 if doctor.worst(self.verdicts) == doctor.FAIL else 0)


class Explain(show.ShowOne):
    """The path one image's root disks take, and why (slow boots)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('image', metavar='IMAGE_ID')
        return parser

    def take_action(self, parsed_args):
        ctx = self.app.context
        meta = glancerecord.show(ctx, parsed_args.image)
        disk = imagepath.probe()
        path = imagepath.find(ctx, meta, disk)
        refusals = '\n'.join('%s: %s: %s' % (location.short(u), c, w)
                             for u, c, w in path.refusals)
        base = ''
        if path.kind == 'cache':
            base = util.base_state(disk.driver, meta)
        return (('image', 'name', 'disk_format', 'path', 'why', 'source',
                 'refused locations', 'cached base'),
                (path.image_id, meta.get('name') or '',
                 meta.get('disk_format') or '', path.kind, path.why,
                 path.source, refusals, base))
