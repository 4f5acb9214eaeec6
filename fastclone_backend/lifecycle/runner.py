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

"""The cluster-wide lifecycle pass: bases, trash, flatten.

It runs from Nova's periodic image-cache pass on every fastrbd host
(``LibvirtDriver.manage_image_cache``, every ``[image_cache]
manager_interval``), but does its work on one host per interval: it holds
a RADOS lease on ``fastclone-lifecycle`` in the cache pool, where it also
records when it last ran and which flatten tasks it queued.

survey (Ceph, Glance) -> :mod:`fastclone_backend.lifecycle.policy` -> act.

The survey scales with the bases: they come from the base index (one omap
read, see :mod:`fastclone_backend.cache.baseindex`) and Glance is asked in
pages (:mod:`fastclone_backend.lifecycle.glancestate`); only the bases the
plan may act on are opened (:func:`policy.to_look_at`).
"""

import json
import socket
import time

from oslo_log import log as logging

import nova.conf
from nova.storage import rbd_utils

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from fastclone_backend.cache import verdicts
from fastclone_backend import exception as fc_exception
from fastclone_backend import lease
from fastclone_backend.lifecycle import chains
from fastclone_backend.lifecycle import flatten
from fastclone_backend.lifecycle import glancestate
from fastclone_backend.lifecycle import policy
from fastclone_backend.lifecycle import trash

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

LAST_PASS = 'last_pass'
FLATTEN_KEY = 'flatten/'
MIN_INTERVAL = 60  # Nova runs a manager_interval of 0 every 60 s


def rules() -> policy.Rules:
    fc = CONF.fastclone
    return policy.Rules(
        remove_unused=CONF.image_cache.remove_unused_base_images,
        min_age=CONF.image_cache.remove_unused_original_minimum_age_seconds,
        max_bytes=fc.cache_max_bytes, max_count=fc.cache_max_count,
        flatten_retired=fc.flatten_retired_clones,
        flatten_older_than=fc.flatten_clones_older_than * policy.HOUR,
        max_depth=fc.clone_max_depth,
        max_in_flight=fc.flatten_max_in_flight)


class Records:
    """Key/values in the omap of the lifecycle object."""

    def __init__(self, ioctx):
        self.ioctx = ioctx

    def read(self, prefix: str = '') -> dict:
        with rbd_utils.rados.ReadOpCtx() as op:
            items, _ret = self.ioctx.get_omap_vals(op, '', prefix, -1)
            self.ioctx.operate_read_op(op, naming.LIFECYCLE_OBJECT)
            return {k: json.loads(v) for k, v in items}

    def write(self, values: dict) -> None:
        with rbd_utils.rados.WriteOpCtx() as op:
            self.ioctx.set_omap(op, tuple(values), tuple(
                json.dumps(v).encode() for v in values.values()))
            self.ioctx.operate_write_op(op, naming.LIFECYCLE_OBJECT)

    def drop(self, keys) -> None:
        if not keys:
            return
        with rbd_utils.rados.WriteOpCtx() as op:
            self.ioctx.remove_omap_keys(op, tuple(keys))
            self.ioctx.operate_write_op(op, naming.LIFECYCLE_OBJECT)


def periodic_pass(context, driver) -> None:
    """Nova's periodic hook: run the pass, never fail Nova's task."""
    try:
        run_pass(context, driver)
    except Exception:
        LOG.exception('fastclone-backend lifecycle pass failed; the next '
                      'periodic pass tries again')


def dry_run(context, driver) -> list:
    """What a pass would do now, as (action, target, why); no lease."""
    store = basestore.BaseStore(driver)
    with store.ioctx() as ioctx:
        return Pass(context, driver, store, Records(ioctx)).dry_run()


def run_pass(context, driver, force: bool = False) -> dict:
    """One pass, unless another host runs one or ran one recently.

    :param force: run even if the last pass is younger than the
        image-cache manager interval.
    """
    store = basestore.BaseStore(driver)
    with store.ioctx() as ioctx, lease.hold(
            ioctx, naming.LIFECYCLE_OBJECT, CONF.fastclone.cache_lock_lease,
            rbd_utils.rados, name='lifecycle',
            desc='fastclone-backend lifecycle pass') as held:
        if held is None:
            LOG.debug('lifecycle pass: another host is running it')
            return {'ran': False, 'why': 'another host is running it'}
        records = Records(ioctx)
        last = records.read(LAST_PASS).get(LAST_PASS)
        interval = max(CONF.image_cache.manager_interval, MIN_INTERVAL)
        if not force and last and time.time() - last['at'] < 0.9 * interval:
            return {'ran': False, 'why': 'ran at %.0f on %s' % (
                last['at'], last['host'])}
        report = Pass(context, driver, store, records).run()
        records.write({LAST_PASS: {'at': time.time(),
                                   'host': socket.gethostname(),
                                   'report': report}})
        return report


class Pass:
    """Survey, plan, act: one lifecycle pass, under the lease."""

    def __init__(self, context, driver, store, records):
        self.context = context
        self.driver = driver
        self.store = store
        self.records = records
        self.rules = rules()
        self.verdicts = None   # the verdict omap, once surveyed
        self.verdict_keys = []
        self.report = {'ran': True, 'retired': [], 'removed': [],
                       'purged': [], 'flatten': [], 'kept': [],
                       'verdicts_pruned': 0, 'bases': 0, 'opened': 0}

    def survey_and_plan(self, now: float):
        """(bases, trash entries, Glance states, Plan): nothing done."""
        bases = self.store.survey_from_index()
        ledger = self.store.ledger()
        self.verdicts = verdicts.Verdicts(self.driver, self.store.pool)
        self.verdict_keys = self.verdicts.keys()
        cloned = {verdicts.image_of(k) for k in self.verdict_keys}
        entries = [e for pool in self._trash_pools()
                   for e in trash.entries(self.driver, pool, ledger, cloned)]
        foreign = {e.name for e in entries if not e.owned}
        glance = glancestate.states(
            glancestate.service_context(self.context),
            {b.image_id for b in bases if b.owned and b.kind == 'base'} |
            foreign, confirm=foreign)
        bases = self._look(bases, glance, now)
        plan = policy.Plan()
        policy.plan_bases(bases, glance, now, self.rules, plan)
        policy.plan_trash(entries, glance, now, self.rules, plan)
        return bases, entries, glance, plan

    def _look(self, bases, glance, now: float) -> list:
        """Open the bases the plan may act on, until it needs no more."""
        while True:
            names = policy.to_look_at(bases, glance, now, self.rules)
            if not names:
                break
            bases = self.store.look(bases, names)
        self.report['bases'] = len(bases)
        self.report['opened'] = sum(1 for b in bases if b.surveyed)
        return bases

    def dry_run(self) -> list:
        """What a pass would do now: (action, target, why) rows.

        Flattens are those of the pinned parents as they are before the
        pass (a base it would retire with clones counts as pinned).
        """
        now = time.time()
        bases, entries, glance, plan = self.survey_and_plan(now)
        rows = [('retire', self._spec(n), why) for n, why in plan.retire]
        rows += [('remove', self._spec(n), why) for n, why in plan.remove]
        rows += [('purge', '%s/%s' % (e.pool, e.name), why)
                 for e, why in plan.purge]
        going = {n for n, _ in plan.retire}
        pinned = {self._spec(b.name): b.children for b in bases
                  if b.children and (b.kind == 'retired' or b.name in going)}
        pinned.update(self._pinned_trash(entries, glance, plan))
        try:
            in_flight = flatten.in_flight(self.driver)
        except (flatten.MgrRefused, rbd_utils.rados.Error) as e:
            return rows + [('flatten', '-', 'not possible: %s' % e)]
        flat = policy.plan_flatten(self._clones(pinned), set(pinned),
                                   in_flight, now, self.rules,
                                   policy.Plan())
        return rows + [('flatten', spec, why) for spec, why in flat.flatten]

    def run(self) -> dict:
        start = time.monotonic()
        now = time.time()
        bases, entries, glance, plan = self.survey_and_plan(now)
        self._record_uses(bases, plan)
        pinned = self._act_on_bases(plan, bases)
        self._purge(plan)
        self._prune_verdicts(entries, plan)
        pinned.update(self._pinned_trash(entries, glance, plan))
        self._flatten(pinned, now)
        self.report['seconds'] = round(time.monotonic() - start, 3)
        LOG.info('lifecycle pass: %(retired)d retired, %(removed)d '
                 'removed, %(purged)d purged from the trash, %(flatten)d '
                 'flatten tasks queued, %(kept)d kept for their clones, in '
                 '%(s).2f s (%(opened)d of %(bases)d cached images opened)',
                 {'retired': len(self.report['retired']),
                  'removed': len(self.report['removed']),
                  'purged': len(self.report['purged']),
                  'flatten': len(self.report['flatten']),
                  'kept': len(self.report['kept']),
                  's': self.report['seconds'],
                  'opened': self.report['opened'],
                  'bases': self.report['bases']})
        return self.report

    def _trash_pools(self) -> list:
        pools = list(CONF.fastclone.clone_allowed_pools) + [self.store.pool]
        return list(dict.fromkeys(pools))

    def _spec(self, name: str) -> str:
        return '%s/%s' % (self.store.pool, name)

    def _record_uses(self, bases, plan) -> None:
        """Bases found with clones are in use: the base index says so."""
        names = policy.in_use(bases, plan)
        if names:
            self.store.in_use(names)

    def _act_on_bases(self, plan, bases) -> dict:
        """Retire, then remove; {pinned parent spec: its clones}.

        Only our own bases pin anything: a look-alike's clones are not
        ours to flatten.
        """
        children = {b.name: b.children for b in bases if b.owned}
        renamed = {}
        for name, why in plan.retire:
            new = self.store.retire(name, why)
            kids = children.pop(name)
            renamed[name] = new   # None: another host retired it first
            if new is not None:
                children[new] = kids
                self.report['retired'].append(new)
        for name, why in plan.remove:
            actual = renamed.get(name, name)
            if actual is None:
                continue
            if self._remove(actual):
                children.pop(actual, None)
                self.report['removed'].append(actual)
            else:
                self.report['kept'].append(actual)
        return {self._spec(name): kids for name, kids in children.items()
                if naming.kind_of(name) == 'retired' and kids}

    def _remove(self, name: str) -> bool:
        """Remove one image; a removal Ceph blocks keeps it for now."""
        try:
            return self.store.remove(name)
        except fc_exception.CephTimeout as e:
            LOG.warning('lifecycle pass: %(err)s; kept until a later pass',
                        {'err': e})
            return False

    def _purge(self, plan) -> None:
        for entry, why in plan.purge:
            key = 'purged' if trash.purge(self.driver, entry) else 'kept'
            self.report[key].append('%s/%s' % (entry.pool, entry.name))

    def _prune_verdicts(self, entries, plan) -> None:
        """Drop the verdicts of Glance snapshots whose image is gone.

        Gone: purged now, or neither in its pool nor in its trash (Glance
        removed it outright).  A pool that cannot be listed keeps its keys.
        """
        if self.verdicts is None:
            return
        purged = {'%s/%s' % (e.pool, e.name) for e, _ in plan.purge}
        purged &= set(self.report['purged'])
        trashed = {'%s/%s' % (e.pool, e.name) for e in entries
                   if '%s/%s' % (e.pool, e.name) not in purged}
        present = {}
        doomed = []
        for key in self.verdict_keys:
            pool, image = verdicts.image_of(key)
            if pool not in present:
                present[pool] = self._listed(pool)
            if present[pool] is None:
                continue
            spec = '%s/%s' % (pool, image)
            if spec in purged or (image not in present[pool] and
                                  spec not in trashed):
                doomed.append(key)
        self.verdicts.drop(doomed)
        self.report['verdicts_pruned'] = len(doomed)

    def _listed(self, pool: str):
        """The image names of a pool, None if it cannot be listed."""
        try:
            with rbd_utils.RADOSClient(self.driver, pool) as client:
                return set(rbd_utils.RbdProxy().list(client.ioctx))
        except (rbd_utils.rbd.Error, rbd_utils.rados.Error) as e:
            LOG.warning('lifecycle pass: cannot list pool %(pool)s '
                        '(%(err)s): its verdicts are kept',
                        {'pool': pool, 'err': e})
            return None

    def _pinned_trash(self, entries, glance, plan) -> dict:
        """Trash entries going away but for their clones."""
        purged = {e.id for e, _ in plan.purge}
        return {'%s/%s' % (e.pool, e.name): e.children for e in entries
                if e.children and e.id not in purged and
                (e.owned or (e.cloned and
                             policy.glance_deleted(e.name, glance)))}

    def _flatten(self, pinned: dict, now: float) -> None:
        try:
            in_flight = flatten.in_flight(self.driver)
        except (flatten.MgrRefused, rbd_utils.rados.Error) as e:
            flatten.warn_once(self.driver, CONF.libvirt.images_rbd_pool, e)
            return
        plan = policy.plan_flatten(self._clones(pinned), set(pinned),
                                   in_flight, now, self.rules, policy.Plan())
        self._track(plan.flatten, in_flight)

    def _clones(self, pinned: dict) -> list:
        clones = []
        if self.rules.flatten_retired:
            clones += [policy.Clone(spec=kid, parent=parent)
                       for parent, kids in pinned.items() for kid in kids]
        if self.rules.max_depth or self.rules.flatten_older_than:
            clones += chains.Scanner(self.driver).clones(
                CONF.libvirt.images_rbd_pool)
        return clones

    def _track(self, wanted, in_flight) -> None:
        """Queue the flattens; re-queue lost ones; forget finished ones."""
        records = self.records.read(FLATTEN_KEY)
        queued = {}
        for spec, why in wanted:
            key = FLATTEN_KEY + spec
            attempts = records.get(key, {}).get('attempts', 0) + 1
            if attempts > 1:
                LOG.warning('flatten of %(spec)s did not finish (its task '
                            'failed or was lost); queuing it again, attempt '
                            '%(n)d', {'spec': spec, 'n': attempts})
            task = flatten.submit(self.driver, spec)
            if task is None:
                break  # refused: logged once, nothing more to try now
            queued[key] = {'task': task, 'at': time.time(), 'why': why,
                           'attempts': attempts}
            self.report['flatten'].append(spec)
        if queued:
            self.records.write(queued)
        done = [k for k in records if k not in queued and
                k[len(FLATTEN_KEY):] not in in_flight]
        self.records.drop(done)
