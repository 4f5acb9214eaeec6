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

"""``trash list | purge``, under the lifecycle pass's rules."""

import time

from cliff import lister

import nova.conf

from fastclone_backend.cache import basestore
from fastclone_backend.lifecycle import glancestate
from fastclone_backend.lifecycle import policy
from fastclone_backend.lifecycle import runner
from fastclone_backend.lifecycle import trash
from fastclone_backend.manage import util

CONF = nova.conf.CONF


def pools(drv) -> list:
    found = list(CONF.fastclone.clone_allowed_pools)
    found.append(basestore.BaseStore(drv).pool)
    return list(dict.fromkeys(found))


def decisions(ctx, drv):
    """[(entry, purge?, why)] for every trash entry, by policy.plan_trash."""
    entries = [e for p in pools(drv) for e in trash.entries(drv, p)]
    names = {e.name for e in entries}
    glance = glancestate.states(glancestate.service_context(ctx), names,
                                confirm=names)
    plan = policy.plan_trash(entries, glance, time.time(),
                             runner.rules(), policy.Plan())
    purge = {e.id: why for e, why in plan.purge}
    found = []
    for entry in entries:
        if entry.id in purge:
            found.append((entry, True, purge[entry.id]))
        else:
            found.append((entry, False, _keep_why(entry, glance)))
    return found


def _keep_why(entry, glance) -> str:
    if entry.children:
        return 'has %d clones' % len(entry.children)
    if time.time() < entry.deferred_until:
        return 'deferred until %s' % util.iso(entry.deferred_until)
    if entry.name not in glance:
        return 'Glance did not answer for it'
    if glance[entry.name] is not policy.DELETED:
        return 'its Glance image is not deleted'
    return 'kept: [image_cache] remove_unused_base_images = False'


class TrashList(lister.Lister):
    """RBD trash entries of the Glance and cache pools, and their fate."""

    def take_action(self, parsed_args):
        rows = [(e.pool, e.id, e.name, util.iso(e.deferred_until),
                 len(e.children), 'purge' if purge else 'keep', why)
                for e, purge, why in decisions(self.app.context,
                                               util.driver())]
        return ('Pool', 'ID', 'Name', 'Deferred until', 'Children',
                'Decision', 'Why'), rows


class TrashPurge(lister.Lister):
    """Purge the trash entries the lifecycle rules allow (--dry-run)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--dry-run', action='store_true')
        return parser

    def take_action(self, parsed_args):
        drv = util.driver()
        rows = []
        for entry, purge, why in decisions(self.app.context, drv):
            if not purge:
                continue
            if parsed_args.dry_run:
                result = 'would purge'
            else:
                result = 'purged' if trash.purge(drv, entry) else 'kept'
            rows.append((entry.pool, entry.id, entry.name, result, why))
        return ('Pool', 'ID', 'Name', 'Result', 'Why'), rows
