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

"""``cache list | show | prefetch | prune | evict | stats``."""

import time

from cliff import lister
from cliff import show

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from fastclone_backend.cache import populate
from fastclone_backend.cache import statsstore
from fastclone_backend import exception as fc_exception
from fastclone_backend.lifecycle import runner
from fastclone_backend.manage import glanceprobe
from fastclone_backend.manage import util
from fastclone_backend.spawn import glancerecord
from fastclone_backend.spawn import imagepath

LIST_COLUMNS = ('Image', 'Name', 'State', 'Size', 'Age', 'Last used',
                'Children')


def _row(drv, store, base, now):
    made = util.created(drv, store.pool, base.name)
    return (base.image_id, base.name, util.state(base), base.size,
            int(now - made) if made else '', util.iso(base.last_used),
            len(base.children))


class CacheList(lister.Lister):
    """The cached bases: image, size, age (s), last use, clones, state.

    State is ready, partial (no snapshot, or a crashed population's
    leftover), populating (its population lock is held) or retired.
    """

    def take_action(self, parsed_args):
        drv = util.driver()
        store = basestore.BaseStore(drv)
        now = time.time()
        return LIST_COLUMNS, [_row(drv, store, b, now)
                              for b in store.survey()]


class CacheShow(show.ShowOne):
    """One image's cached base (or any of its retired ones)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('image', metavar='IMAGE_ID')
        return parser

    def take_action(self, parsed_args):
        drv = util.driver()
        store = basestore.BaseStore(drv)
        names = [n for n in store.names()
                 if naming.image_id_of(n) == parsed_args.image]
        if not names:
            raise SystemExit('no cached base of image %s in pool %s'
                             % (parsed_args.image, store.pool))
        names.sort(key=lambda n: naming.kind_of(n) != 'base')
        base = store.describe(names[0])
        if base is None:
            raise SystemExit('%s vanished' % names[0])
        made = util.created(drv, store.pool, base.name)
        stored = {k[len(naming.META):]: v for k, v in base.stored.items()
                  if k.startswith(naming.META)}
        return (('image', 'name', 'pool', 'state', 'size', 'created',
                 'last used', 'children', 'fingerprint', 'populated by',
                 'other names'),
                (base.image_id, base.name, store.pool, util.state(base),
                 base.size, util.iso(made), util.iso(base.last_used),
                 '\n'.join(base.children),
                 ', '.join('%s=%s' % (k, stored[k]) for k in
                           ('os_hash_algo', 'os_hash_value', 'checksum',
                            'size') if k in stored),
                 stored.get('populated_by', ''), '\n'.join(names[1:])))


class CachePrefetch(lister.Lister):
    """Warm the cached bases of images (or of every active one).

    An image that clones in place needs no base and is left alone; the
    others are populated once, cluster-wide, as a spawn would (progress is
    logged).
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('images', metavar='IMAGE_ID', nargs='*')
        parser.add_argument('--all', action='store_true',
                            help='every active image that cannot be '
                                 'cloned in place')
        return parser

    def take_action(self, parsed_args):
        ctx = self.app.context
        if parsed_args.all:
            ids = [i['id'] for i in glanceprobe.active_images(ctx)]
        elif parsed_args.images:
            ids = parsed_args.images
        else:
            raise SystemExit('give image ids, or --all')
        drv = util.driver()
        disk = imagepath.probe()
        rows = [_prefetch(ctx, drv, disk, i) for i in ids]
        statsstore.flush_quietly(drv)
        self.failed = any(r[1] in ('refused', 'error') for r in rows)
        return ('Image', 'Result', 'Seconds', 'Detail'), rows

    def run(self, parsed_args):
        return super().run(parsed_args) or (1 if self.failed else 0)


def _prefetch(ctx, drv, disk, image_id):
    start = time.monotonic()

    def row(result, detail):
        return (image_id, result, round(time.monotonic() - start, 2), detail)
    try:
        meta = glancerecord.show(ctx, image_id)
        path = imagepath.find(ctx, meta, disk)
        if path.kind != 'cache':
            return row(path.kind, path.why)
        _url, size, hit = populate.Populator(drv).ensure(ctx, meta, 0)
    except (fc_exception.ImageRejected, fc_exception.CacheError) as e:
        return row('refused', str(e))
    except Exception as e:
        return row('error', '%s: %s' % (type(e).__name__, e))
    return row('existing' if hit else 'cached', '%s (%d bytes)'
               % (path.source, size))


class CachePrune(lister.Lister):
    """Run the lifecycle pass now (the one Nova's periodic task runs).

    With --dry-run, print what it would retire, remove, purge and flatten,
    and why, without doing it.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--dry-run', action='store_true')
        return parser

    def take_action(self, parsed_args):
        ctx = self.app.context
        drv = util.driver()
        if parsed_args.dry_run:
            return ('Action', 'Target', 'Why'), runner.dry_run(ctx, drv)
        report = runner.run_pass(ctx, drv, force=True)
        if not report.get('ran'):
            raise SystemExit('not run: %s' % report.get('why'))
        rows = [(action, target, '') for action in
                ('retired', 'removed', 'purged', 'flatten', 'kept')
                for target in report[action]]
        return ('Action', 'Target', 'Why'), rows


class CacheEvict(show.ShowOne):
    """Remove an image's cached base now.

    A base with clones is refused unless --retire: it is then only hidden
    (its clones keep working) and the lifecycle pass removes it after its
    last clone.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('image', metavar='IMAGE_ID')
        parser.add_argument('--retire', action='store_true',
                            help='hide a base that has clones')
        return parser

    def take_action(self, parsed_args):
        store = basestore.BaseStore(util.driver())
        name = naming.base_name(parsed_args.image)
        base = store.describe(name)
        if base is None:
            raise SystemExit('no cached base %s/%s' % (store.pool, name))
        if not base.owned:
            raise SystemExit(
                '%s/%s has our name but is not ours (no valid '
                'fastclone.owner mark): not evicted' % (store.pool, name))
        if base.children and not parsed_args.retire:
            raise SystemExit(
                '%s/%s has %d clones (%s): not evicted; --retire hides it '
                'and the lifecycle pass removes it after its last clone'
                % (store.pool, name, len(base.children),
                   ', '.join(base.children[:5])))
        retired = store.retire(name, 'evicted by fastclone-manage')
        if retired is None:
            raise SystemExit('%s/%s vanished meanwhile' % (store.pool, name))
        removed = not base.children and store.remove(retired)
        return (('image', 'base', 'action', 'now'),
                (parsed_args.image, '%s/%s' % (store.pool, name),
                 'removed' if removed else 'retired', retired))


class CacheStats(lister.Lister):
    """Counters and seconds per step, summed over every process.

    Each nova-compute records its own in RADOS after each population and
    at each periodic pass; --per-process lists them apart.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--per-process', action='store_true')
        return parser

    def take_action(self, parsed_args):
        records = statsstore.read(util.driver())
        if parsed_args.per_process:
            groups = sorted(records.items())
        else:
            groups = [('all', statsstore.aggregate(records))]
        rows = []
        for who, rec in groups:
            rows += [(who, 'count', k, v)
                     for k, v in sorted(rec.get('stats', {}).items())]
            rows += [(who, 'seconds', k, round(v, 3))
                     for k, v in sorted(rec.get('seconds', {}).items())]
            if who == 'all':
                rows.append((who, 'processes', 'processes',
                             rec['processes']))
                rows.append((who, 'last', 'last flush',
                             util.iso(rec['last'])))
        return ('Process', 'Kind', 'Name', 'Value'), rows
