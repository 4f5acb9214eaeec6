"""The lifecycle pass: when it runs, its flatten records, its hook."""

import dataclasses
import time
from unittest import mock

import fixtures
from nova.virt.libvirt import driver as libvirt_driver

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from fastclone_backend.cache import verdicts
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from fastclone_backend import hook
from fastclone_backend.lifecycle import flatten
from fastclone_backend.lifecycle import glancestate
from fastclone_backend.lifecycle import policy
from fastclone_backend.lifecycle import runner
from fastclone_backend.lifecycle import trash
from tests.unit import base
from tests.unit import fakes

IMAGE = '6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f'
OTHER = '7c4a6d2f-3e5b-4f9c-8d1a-1b2c3d4e5f60'
VM1 = 'vms/1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f0_disk'
VM2 = 'vms/2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d_disk'
VM3 = 'vms/3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f_disk'
WHY = 'pins vms/fastclone-retired-6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f-ab12'
REPORT = {'ran': True, 'retired': [], 'removed': [], 'purged': [],
          'flatten': [], 'kept': [], 'seconds': 0.1}


class RunPassTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        self.flags(manager_interval=2400, group='image_cache')
        fc_conf.register_opts(runner.CONF)
        self.ioctx = self.ceph.rados.Rados.return_value.open_ioctx.return_value
        self.survey = self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'survey', autospec=True,
            return_value=[])).mock
        self.run = self.useFixture(fixtures.MockPatchObject(
            runner.Pass, 'run', autospec=True,
            return_value=dict(REPORT))).mock
        self.read = self.useFixture(fixtures.MockPatchObject(
            runner.Records, 'read', autospec=True, return_value={})).mock
        self.write = self.useFixture(fixtures.MockPatchObject(
            runner.Records, 'write', autospec=True)).mock

    def _last_pass(self, seconds_ago):
        self.read.return_value = {runner.LAST_PASS: {
            'at': time.time() - seconds_ago, 'host': 'compute-2',
            'report': REPORT}}

    def _run_pass(self, **kwargs):
        return runner.run_pass(mock.sentinel.ctx,
                               cluster.SharedRBDDriver(), **kwargs)

    def test_another_host_holds_the_lease(self):
        self.ioctx.lock_exclusive.side_effect = fakes.RadosObjectBusy('busy')
        self.assertEqual({'ran': False, 'why': 'another host is running it'},
                         self._run_pass(force=True))
        self.ioctx.lock_exclusive.assert_called_once_with(
            naming.LIFECYCLE_OBJECT, 'lifecycle', mock.ANY,
            desc='fastclone-backend lifecycle pass', duration=10, flags=0)
        self.read.assert_not_called()
        self.run.assert_not_called()
        self.survey.assert_not_called()
        self.ioctx.unlock.assert_not_called()

    def test_recent_pass_on_another_host_is_enough(self):
        self._last_pass(0.8 * 2400)
        result = self._run_pass()
        self.assertFalse(result['ran'])
        self.assertRegex(result['why'], r'^ran at \d+ on compute-2$')
        self.read.assert_called_once_with(runner.LAST_PASS)
        self.run.assert_not_called()
        self.survey.assert_not_called()
        self.write.assert_not_called()
        cookie = self.ioctx.lock_exclusive.call_args[0][2]
        self.ioctx.unlock.assert_called_once_with(
            naming.LIFECYCLE_OBJECT, 'lifecycle', cookie)

    def test_interval_below_a_minute_counts_as_a_minute(self):
        self.flags(manager_interval=0, group='image_cache')
        self._last_pass(30)
        self.assertFalse(self._run_pass()['ran'])
        self.run.assert_not_called()

    def test_force_runs_despite_a_recent_pass(self):
        self._last_pass(10)
        self.assertEqual(REPORT, self._run_pass(force=True))
        self.assertEqual(1, self.run.call_count)

    def test_runs_once_the_interval_is_nearly_over_and_records_it(self):
        self._last_pass(0.95 * 2400)
        before = time.time()
        self.assertEqual(REPORT, self._run_pass())
        self.assertEqual(1, self.run.call_count)
        (values,), _ = self.write.call_args
        self.assertEqual([runner.LAST_PASS], list(values))
        self.assertGreaterEqual(values[runner.LAST_PASS]['at'], before)
        self.assertEqual(REPORT, values[runner.LAST_PASS]['report'])

    def test_first_pass_ever_runs(self):
        self.assertTrue(self._run_pass()['ran'])
        self.assertEqual(1, self.run.call_count)


class TrackTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        fc_conf.register_opts(runner.CONF)
        self.records = mock.create_autospec(runner.Records, instance=True)
        self.records.read.return_value = {}
        self.submit = self.useFixture(fixtures.MockPatchObject(
            flatten, 'submit', autospec=True)).mock
        self.pass_ = runner.Pass(mock.sentinel.ctx, mock.sentinel.driver,
                                 mock.sentinel.store, self.records)

    def test_lost_task_queued_again_with_one_more_attempt(self):
        key = runner.FLATTEN_KEY + VM1
        self.records.read.return_value = {key: {
            'task': 'task-1', 'at': 1.0, 'why': WHY, 'attempts': 2}}
        self.submit.return_value = 'task-2'
        with mock.patch.object(runner.LOG, 'warning',
                               autospec=True) as warning:
            self.pass_._track([(VM1, WHY)], set())
        self.records.read.assert_called_once_with(runner.FLATTEN_KEY)
        self.submit.assert_called_once_with(mock.sentinel.driver, VM1)
        self.records.write.assert_called_once_with({key: {
            'task': 'task-2', 'at': mock.ANY, 'why': WHY, 'attempts': 3}})
        self.records.drop.assert_called_once_with([])
        self.assertEqual(1, warning.call_count)
        self.assertEqual([VM1], self.pass_.report['flatten'])

    def test_first_submission_is_attempt_one(self):
        self.submit.return_value = 'task-1'
        self.pass_._track([(VM1, WHY)], set())
        (values,), _ = self.records.write.call_args
        self.assertEqual(1, values[runner.FLATTEN_KEY + VM1]['attempts'])

    def test_records_of_finished_tasks_dropped(self):
        done, running = (runner.FLATTEN_KEY + VM1,
                         runner.FLATTEN_KEY + VM2)
        self.records.read.return_value = {
            done: {'task': 'task-1', 'attempts': 1},
            running: {'task': 'task-2', 'attempts': 1}}
        self.pass_._track([], {VM2})
        self.submit.assert_not_called()
        self.records.write.assert_not_called()
        self.records.drop.assert_called_once_with([done])
        self.assertEqual([], self.pass_.report['flatten'])

    def test_stops_at_the_first_refused_submission(self):
        self.submit.side_effect = ['task-1', None, 'task-3']
        self.pass_._track([(VM1, WHY), (VM2, WHY), (VM3, WHY)], set())
        self.assertEqual([mock.call(mock.sentinel.driver, VM1),
                          mock.call(mock.sentinel.driver, VM2)],
                         self.submit.call_args_list)
        (values,), _ = self.records.write.call_args
        self.assertEqual([runner.FLATTEN_KEY + VM1], list(values))
        self.assertEqual([VM1], self.pass_.report['flatten'])

    def test_nothing_written_when_every_submission_is_refused(self):
        self.submit.return_value = None
        self.pass_._track([(VM1, WHY), (VM2, WHY)], set())
        self.assertEqual(1, self.submit.call_count)
        self.records.write.assert_not_called()


class ActOnBasesTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        fc_conf.register_opts(runner.CONF)
        self.store = mock.create_autospec(basestore.BaseStore,
                                          instance=True)
        self.store.pool = 'vms'
        self.pass_ = runner.Pass(mock.sentinel.ctx, mock.sentinel.driver,
                                 self.store, mock.sentinel.records)

    def test_base_retired_elsewhere_meanwhile_is_skipped(self):
        gone = naming.base_name(IMAGE)
        mine = naming.base_name(OTHER)
        plan = policy.Plan(retire=[(gone, 'deleted'), (mine, 'deleted')],
                           remove=[(gone, 'deleted'), (mine, 'deleted')])
        self.store.retire.side_effect = [None, 'retired-mine']
        self.store.remove.return_value = True
        pinned = self.pass_._act_on_bases(plan, [policy.Base(gone),
                                                 policy.Base(mine)])
        self.store.remove.assert_called_once_with('retired-mine')
        self.assertEqual(['retired-mine'], self.pass_.report['retired'])
        self.assertEqual(['retired-mine'], self.pass_.report['removed'])
        self.assertEqual({}, pinned)

    def test_retired_base_with_clones_is_pinned(self):
        base = naming.base_name(IMAGE)
        new = naming.retired_name(IMAGE, 'ab12cd34')
        plan = policy.Plan(retire=[(base, 'deleted')])
        self.store.retire.return_value = new
        pinned = self.pass_._act_on_bases(
            plan, [policy.Base(base, children=('vms/disk-1',))])
        self.assertEqual({'vms/' + new: ('vms/disk-1',)}, pinned)
        self.store.remove.assert_not_called()


class DryRunTestCase(base.TestCase):
    """What cache prune --dry-run prints: the pass's plan, nothing done."""

    def setUp(self):
        super().setUp()
        fc_conf.register_opts(runner.CONF)
        self.flags(images_rbd_pool='vms', group='libvirt')
        self.flags(flatten_retired_clones=True, clone_max_depth=0,
                   group='fastclone')
        self.store = mock.create_autospec(basestore.BaseStore,
                                          instance=True)
        self.store.pool = 'vms'
        self.in_flight = self.useFixture(fixtures.MockPatchObject(
            flatten, 'in_flight', autospec=True, return_value=set())).mock
        self.submit = self.useFixture(fixtures.MockPatchObject(
            flatten, 'submit', autospec=True)).mock
        self.pass_ = runner.Pass(mock.sentinel.ctx, mock.sentinel.driver,
                                 self.store, mock.sentinel.records)

    def _plan(self, bases, plan):
        self.useFixture(fixtures.MockPatchObject(
            runner.Pass, 'survey_and_plan', autospec=True,
            return_value=(bases, [], {}, plan)))

    def test_rows_for_each_decision_and_no_action(self):
        base = naming.base_name(IMAGE)
        unused = naming.base_name(OTHER)
        self._plan([policy.Base(base, children=(VM1,)),
                    policy.Base(unused)],
                   policy.Plan(retire=[(base, 'image deleted in Glance'),
                                       (unused, 'unused for 90000 s')],
                               remove=[(unused, 'unused for 90000 s')]))
        rows = self.pass_.dry_run()
        self.assertEqual([
            ('retire', 'vms/' + base, 'image deleted in Glance'),
            ('retire', 'vms/' + unused, 'unused for 90000 s'),
            ('remove', 'vms/' + unused, 'unused for 90000 s'),
            ('flatten', VM1, 'pins vms/' + base)], rows)
        self.store.retire.assert_not_called()
        self.store.remove.assert_not_called()
        self.store.in_use.assert_not_called()
        self.submit.assert_not_called()

    def test_mgr_refusal_is_a_row(self):
        self._plan([], policy.Plan())
        self.in_flight.side_effect = flatten.MgrRefused('EACCES')
        self.assertEqual([('flatten', '-', 'not possible: EACCES')],
                         self.pass_.dry_run())


class RecordUsesTestCase(base.TestCase):
    """A pass records the bases it found with clones as used now."""

    def setUp(self):
        super().setUp()
        fc_conf.register_opts(runner.CONF)
        self.flags(images_rbd_pool='vms', group='libvirt')
        self.flags(clone_max_depth=0, flatten_clones_older_than=0,
                   group='fastclone')
        self.store = mock.create_autospec(basestore.BaseStore,
                                          instance=True)
        self.store.pool = 'vms'
        self.useFixture(fixtures.MockPatchObject(
            flatten, 'in_flight', autospec=True, return_value=set()))
        records = mock.create_autospec(runner.Records, instance=True)
        records.read.return_value = {}
        self.pass_ = runner.Pass(mock.sentinel.ctx, mock.sentinel.driver,
                                 self.store, records)

    def _run(self, bases, plan):
        self.useFixture(fixtures.MockPatchObject(
            runner.Pass, 'survey_and_plan', autospec=True,
            return_value=(bases, [], {}, plan)))
        return self.pass_.run()

    def test_bases_found_with_clones_recorded_as_used(self):
        pinned = policy.Base(naming.base_name(IMAGE), children=(VM1,))
        free = policy.Base(naming.base_name(OTHER))
        self._run([pinned, free], policy.Plan())
        self.store.in_use.assert_called_once_with([pinned.name])

    def test_no_base_with_clones_no_write(self):
        gone = policy.Base(naming.base_name(IMAGE), children=(VM1,))
        self.store.retire.return_value = naming.retired_name(IMAGE, 'ab12')
        self._run([gone, policy.Base(naming.base_name(OTHER))],
                  policy.Plan(retire=[(gone.name, 'deleted')]))
        self.store.in_use.assert_not_called()


class SurveyAndPlanTestCase(base.TestCase):
    """The survey: bases from the index, Glance in pages, few opened."""

    def setUp(self):
        super().setUp()
        fc_conf.register_opts(runner.CONF)
        self.flags(clone_allowed_pools=['images'], group='fastclone')
        self.store = mock.create_autospec(basestore.BaseStore,
                                          instance=True)
        self.store.pool = 'vms'
        self.store.ledger.return_value = set()
        self.truth = {}   # name: the Base as opening it finds it
        self.store.look.side_effect = lambda bases, names: [
            self.truth[b.name] if b.name in names else b for b in bases]
        self.useFixture(fixtures.MockPatchObject(
            verdicts, 'Verdicts', autospec=True)).mock.return_value \
            .keys.return_value = []
        self.entries = self.useFixture(fixtures.MockPatchObject(
            trash, 'entries', autospec=True, return_value=[])).mock
        self.useFixture(fixtures.MockPatchObject(
            glancestate, 'service_context', autospec=True,
            side_effect=lambda ctx: ctx))
        self.states = self.useFixture(fixtures.MockPatchObject(
            glancestate, 'states', autospec=True)).mock
        self.pass_ = runner.Pass(mock.sentinel.ctx, mock.sentinel.driver,
                                 self.store, mock.sentinel.records)

    def _bases(self, *found):
        """Indexed (not opened) ready bases; the truth kept to open."""
        for base_ in found:
            self.truth[base_.name] = base_
        return [dataclasses.replace(b, children=(), surveyed=False)
                if b.kind == 'base' else b for b in found]

    def test_only_the_condemned_base_is_opened(self):
        now = time.time()
        gone = policy.Base(naming.base_name(IMAGE), last_used=now,
                           children=(VM1,))
        current = {'id': OTHER, 'status': 'active', 'size': 1}
        live = policy.Base(naming.base_name(OTHER), last_used=now,
                           stored=naming.fingerprint(current))
        retired = policy.Base(naming.retired_name(OTHER, 'ab12cd34'))
        self.store.survey_from_index.return_value = self._bases(
            gone, live, retired)
        self.states.return_value = {IMAGE: policy.DELETED, OTHER: current}
        bases, _entries, _glance, plan = self.pass_.survey_and_plan(now)
        self.store.look.assert_called_once_with(mock.ANY, [gone.name])
        self.assertEqual([(gone.name, 'image deleted in Glance')],
                         plan.retire)
        self.assertEqual([(retired.name, 'retired, no clones left')],
                         plan.remove)   # the retired base was opened
        self.assertEqual({'bases': 3, 'opened': 2},
                         {k: self.pass_.report[k] for k in ('bases',
                                                            'opened')})
        self.assertEqual((VM1,), {b.name: b for b in bases}[
            gone.name].children)

    def test_glance_asked_about_ready_bases_and_foreign_trash_only(self):
        trashed = '0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6'
        self.entries.return_value = [
            policy.TrashEntry('images', 'a1', trashed, cloned=True),
            policy.TrashEntry('vms', 'b2', naming.retired_name(
                IMAGE, 'cd34ef56'), owned=True)]
        self.store.survey_from_index.return_value = self._bases(
            policy.Base(naming.base_name(IMAGE), last_used=time.time()),
            policy.Base(naming.base_name(OTHER), owned=False),
            policy.Base(naming.retired_name(OTHER, 'ab12cd34')))
        self.states.return_value = {}
        self.pass_.survey_and_plan(time.time())
        self.states.assert_called_once_with(
            mock.sentinel.ctx, {IMAGE, trashed}, confirm={trashed})
        self.store.look.assert_not_called()   # Glance said nothing


class PeriodicPassTestCase(base.TestCase):

    def test_failure_is_logged_not_raised(self):
        with mock.patch.object(runner, 'run_pass', autospec=True,
                               side_effect=RuntimeError('mgr down')) as run, \
                mock.patch.object(runner.LOG, 'exception',
                                  autospec=True) as log:
            self.assertIsNone(runner.periodic_pass(mock.sentinel.ctx,
                                                   mock.sentinel.driver))
        run.assert_called_once_with(mock.sentinel.ctx, mock.sentinel.driver)
        self.assertEqual(1, log.call_count)


class ManageImageCacheHookTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        self.order = []
        # patched before install(), restored after uninstall()
        self.original = mock.create_autospec(
            libvirt_driver.LibvirtDriver.manage_image_cache,
            side_effect=lambda *a: self.order.append('nova'))
        self.useFixture(fixtures.MockPatchObject(
            libvirt_driver.LibvirtDriver, 'manage_image_cache',
            self.original))
        self.periodic = self.useFixture(fixtures.MockPatchObject(
            runner, 'periodic_pass', autospec=True,
            side_effect=lambda *a: self.order.append('fastclone'))).mock
        self.sweep = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.workdir.sweep_quietly', autospec=True,
            side_effect=lambda *a: self.order.append('sweep'))).mock
        self.addCleanup(hook.uninstall)
        hook.install()

    def _manage(self):
        libvirt_driver.LibvirtDriver.manage_image_cache(
            mock.sentinel.libvirt, mock.sentinel.ctx, mock.sentinel.all)

    def test_rbd_runs_nova_then_the_lifecycle_pass(self):
        self.flags(images_type='rbd', group='libvirt')
        self._manage()
        # this host's work dir first, then the cluster-wide pass
        self.assertEqual(['nova', 'sweep', 'fastclone'], self.order)
        self.original.assert_called_once_with(
            mock.sentinel.libvirt, mock.sentinel.ctx, mock.sentinel.all)
        (ctx, rbd_driver), _ = self.periodic.call_args
        self.assertIs(mock.sentinel.ctx, ctx)
        self.assertIsInstance(rbd_driver, cluster.SharedRBDDriver)
        self.assertEqual('vms', rbd_driver.pool)

    def test_other_images_types_only_run_nova(self):
        self.flags(images_type='qcow2', group='libvirt')
        self._manage()
        self.assertEqual(['nova'], self.order)
        self.periodic.assert_not_called()

    def test_uninstall_restores_nova_method(self):
        patched = libvirt_driver.LibvirtDriver.manage_image_cache
        self.assertIs(self.original, patched.fastclone_original)
        hook.uninstall()
        self.assertIs(self.original,
                      libvirt_driver.LibvirtDriver.manage_image_cache)


class PruneVerdictsTestCase(base.TestCase):
    """Verdicts go with their images: purged now, or gone from the pool."""

    def setUp(self):
        super().setUp()
        fc_conf.register_opts(runner.CONF)
        self.pass_ = runner.Pass(mock.sentinel.ctx, mock.sentinel.driver,
                                 mock.sentinel.store, mock.sentinel.records)
        self.pass_.verdicts = mock.Mock()
        self.listed = {'images': {IMAGE}}
        self.useFixture(fixtures.MockPatchObject(
            runner.Pass, '_listed', autospec=True,
            side_effect=lambda *args: self.listed.get(args[-1])))

    def test_only_verdicts_of_gone_images_are_dropped(self):
        purged = policy.TrashEntry('images', 'a1', OTHER)
        kept = policy.TrashEntry('images', 'b2', '0' * 36)
        self.pass_.verdict_keys = [
            'images/%s@4' % IMAGE,            # live: kept
            'images/%s@5' % OTHER,            # purged in this pass
            'images/%s@6' % ('0' * 36),       # in the trash still: kept
            'images/%s@7' % ('1' * 36),       # removed by Glance outright
            'golden/%s@8' % ('2' * 36)]       # pool not listable: kept
        self.pass_.report['purged'] = ['images/' + OTHER]
        self.pass_._prune_verdicts([purged, kept], policy.Plan(
            purge=[(purged, 'Glance image deleted, no clones left')]))
        self.pass_.verdicts.drop.assert_called_once_with(
            ['images/%s@5' % OTHER, 'images/%s@7' % ('1' * 36)])
        self.assertEqual(2, self.pass_.report['verdicts_pruned'])
