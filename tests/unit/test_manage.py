"""fastclone-manage: its commands, exit status, helpers, CLI reference."""

import io
import json
import os
from unittest import mock

import fixtures

from fastclone_backend.manage import app
from fastclone_backend.manage import cephprobe
from fastclone_backend.manage import clidoc
from fastclone_backend.manage import doctor
from fastclone_backend.manage import glanceprobe
from fastclone_backend.manage import probes
from fastclone_backend.spawn import explain
from tests.unit import base

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
IMAGE = '6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f'


class AppTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.parse = self.useFixture(fixtures.MockPatchObject(
            app, 'parse_nova_conf', autospec=True)).mock
        self.useFixture(fixtures.MockPatchObject(
            app, 'make_context', autospec=True,
            return_value=mock.sentinel.ctx))

    def _run(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        rc = app.ManageApp(stdout=out, stderr=err).run(list(argv))
        return rc, out.getvalue(), err.getvalue()

    def test_every_command_is_registered(self):
        manager = app.command_manager()
        for name, cls in app.COMMANDS.items():
            found, _name, rest = manager.find_command(name.split())
            self.assertIs(cls, found)
            self.assertEqual([], rest)

    def test_config_files_and_dirs_reach_nova_conf(self):
        with mock.patch.object(probes, 'run_all', autospec=True,
                               return_value=[]):
            self._run('--config-file', '/etc/nova/nova.conf',
                      '--config-file', '/etc/nova/more.conf',
                      '--config-dir', '/etc/nova/nova.conf.d', 'doctor')
        self.parse.assert_called_once_with(
            ['/etc/nova/nova.conf', '/etc/nova/more.conf'],
            ['/etc/nova/nova.conf.d'])

    def test_doctor_exits_1_on_a_fail(self):
        verdicts = [doctor.Verdict('a', doctor.PASS, 'fine'),
                    doctor.Verdict('b', doctor.FAIL, 'broken', 'fix it')]
        with mock.patch.object(probes, 'run_all', autospec=True,
                               return_value=verdicts):
            rc, out, err = self._run('doctor', '-f', 'json')
        self.assertEqual(1, rc, err)
        self.assertEqual([{'Check': 'b', 'Status': 'FAIL', 'Saw': 'broken',
                           'Fix': 'fix it'}], json.loads(out)[1:])

    def test_doctor_exits_0_on_warnings(self):
        verdicts = [doctor.Verdict('a', doctor.WARN, 'meh', 'x')]
        with mock.patch.object(probes, 'run_all', autospec=True,
                               return_value=verdicts):
            rc, out, err = self._run('doctor')
        self.assertEqual(0, rc, err)
        self.assertIn('WARN', out)

    def test_doctor_image_runs_only_the_image_checks(self):
        verdicts = [doctor.Verdict('image x', doctor.PASS, 'direct: ...')]
        with mock.patch.object(glanceprobe, 'image_checks', autospec=True,
                               return_value=verdicts) as checks, \
                mock.patch.object(probes, 'run_all', autospec=True) as full:
            rc, out, err = self._run('doctor', '--image', IMAGE, '-f',
                                     'json')
        self.assertEqual(0, rc, err)
        checks.assert_called_once_with(mock.sentinel.ctx, IMAGE)
        full.assert_not_called()


class ProbeHelpersTestCase(base.TestCase):

    def test_schedules_by_pool(self):
        levels = {'2': {'name': 'images/', 'schedule': [
            {'interval': '1d', 'start_time': None}]},
            '3': {'name': 'vms/ns1', 'schedule': [{'interval': '6h'}]}}
        self.assertEqual({'images': ['1d'], 'vms': ['6h']},
                         cephprobe.schedules_by_pool(levels))

    def test_dead_holder_is_a_local_pid_that_is_gone(self):
        host = cephprobe.socket.gethostname()
        self.assertFalse(cephprobe._dead('%s:%d:ab' % (host, os.getpid())))
        self.assertTrue(cephprobe._dead('%s:999999999:ab' % host))
        self.assertFalse(cephprobe._dead('elsewhere:999999999:ab'))
        self.assertFalse(cephprobe._dead('not a cookie'))

    def test_blocklist_probe_is_nobodys_address_for_a_second(self):
        client = mock.Mock()
        client.mon_command.return_value = (0, b'', 'blocklisting')
        self.assertIsNone(cephprobe._blocklist_error(client))
        cmd = json.loads(client.mon_command.call_args[0][0])
        self.assertEqual({'prefix': 'osd blocklist', 'blocklistop': 'add',
                          'addr': '192.0.2.1:0/1', 'expire': 1.0}, cmd)
        client.mon_command.return_value = (-13, b'', 'access denied')
        self.assertEqual('access denied (-13)',
                         cephprobe._blocklist_error(client))

    def test_expiration(self):
        self.assertEqual(0.0, cephprobe._expires('0.000000'))
        self.assertEqual(1798801200.0, cephprobe._expires(
            '2027-01-01T11:00:00.169303+0000'))

    def test_path_verdicts(self):
        url = 'rbd://0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/images/%s/snap' % (
            IMAGE)
        path = explain.Path(IMAGE, 'cache', 'no location can be cloned',
                            refusals=((url, 'other cluster', 'fsid'),))
        found = glanceprobe.path_verdicts(path)
        self.assertEqual([doctor.WARN, doctor.WARN],
                         [v.status for v in found])
        self.assertEqual(doctor.FIXES['other cluster'], found[0].fix)
        refused = glanceprobe.path_verdicts(
            explain.Path(IMAGE, 'refused', 'x'))
        self.assertEqual(doctor.FAIL, refused[0].status)


class CliReferenceTestCase(base.TestCase):

    def test_doc_is_what_the_commands_say(self):
        path = os.path.join(REPO, 'doc', 'source', 'cli.rst')
        with open(path) as f:
            on_disk = f.read()
        self.assertEqual(clidoc.generate(), on_disk,
                         'doc/source/cli.rst is stale: run python -m '
                         'fastclone_backend.manage.clidoc > '
                         'doc/source/cli.rst')

    def test_every_command_has_a_section(self):
        text = clidoc.generate()
        for name in app.COMMANDS:
            self.assertIn('\nfastclone-manage %s\n' % name, text)
