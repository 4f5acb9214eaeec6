"""Activation inside Nova: the fastrbd choice, running as rbd, Backend."""

import os
import subprocess
import sys
from unittest import mock

import fixtures
from nova.virt.libvirt import imagebackend as nova_imagebackend

from fastclone_backend import exception as fc_exception
from fastclone_backend import hook
from fastclone_backend.spawn import fastrbd
from tests.unit import base
from tests.unit import fakes

# Parses a nova.conf the way nova-compute does (nova.config.parse_args),
# in a fresh interpreter, then reports what Nova's code would see.
NOVA_START = """
import sys
from nova import config
import nova.conf
if sys.argv[1] == 'hook':
    from fastclone_backend import hook
    hook.install()
config.parse_args(['nova-compute', '--config-file', sys.argv[2]],
                  configure_db=False, init_rpc=False)
from nova.virt.libvirt import imagebackend
try:
    print(nova.conf.CONF.libvirt.images_type)
    print(imagebackend.Backend(False).backend().__name__)
    print(imagebackend.Backend(False).backend('fastrbd').__name__)
except Exception as e:
    print('ERROR', type(e).__name__, e)
"""


class NovaStartTestCase(base.TestCase):

    def _run(self, mode, images_type='fastrbd'):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'nova.conf')
        with open(path, 'w') as f:
            f.write('[libvirt]\nimages_type = %s\nimages_rbd_pool = vms\n'
                    % images_type)
        return subprocess.run([sys.executable, '-c', NOVA_START, mode, path],
                              capture_output=True, text=True, timeout=120)

    def _start(self, mode, images_type='fastrbd'):
        proc = self._run(mode, images_type)
        self.assertEqual(0, proc.returncode, proc.stderr[-2000:])
        return proc.stdout.split('\n')

    def test_fastrbd_runs_as_rbd_with_fastrbd_backend(self):
        self.assertEqual(['rbd', 'FastRbd', 'FastRbd'],
                         self._start('hook')[:3])

    def test_rbd_also_gets_fastrbd_when_hooked(self):
        self.assertEqual(['rbd', 'FastRbd', 'FastRbd'],
                         self._start('hook', images_type='rbd')[:3])

    def test_without_hook_nova_fails_loudly(self):
        proc = self._run('stock')
        self.assertNotEqual(0, proc.returncode)
        self.assertIn('ConfigFileValueError', proc.stderr)
        self.assertIn("found 'fastrbd'", proc.stderr)


class HookTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        self.addCleanup(hook.uninstall)

    def test_install_adds_choice_and_uninstall_removes_it(self):
        choices = hook._images_type_opt().type.choices
        self.assertNotIn('fastrbd', choices)
        hook.install()
        hook.install()  # idempotent
        self.assertTrue(hook.installed())
        self.assertIn('fastrbd', choices)
        hook.uninstall()
        self.assertFalse(hook.installed())
        self.assertNotIn('fastrbd', choices)
        backend = nova_imagebackend.Backend(False).backend('rbd')
        self.assertIs(nova_imagebackend.Rbd, backend)

    def test_backend_maps_rbd_and_fastrbd(self):
        hook.install()
        backend = nova_imagebackend.Backend(False)
        self.assertIs(fastrbd.FastRbd, backend.backend('rbd'))
        self.assertIs(fastrbd.FastRbd, backend.backend('fastrbd'))
        self.assertIs(nova_imagebackend.Qcow2, backend.backend('qcow2'))

    def test_apply_config_overrides_fastrbd(self):
        hook.install()
        self.flags(images_type='fastrbd', group='libvirt')
        hook.apply_config(hook_conf())
        self.assertEqual('rbd', hook_conf().libvirt.images_type)
        self.assertEqual('fastrbd', hook._state['requested'])

    def test_apply_config_is_idempotent(self):
        hook.install()
        self.flags(images_type='fastrbd', group='libvirt')
        for _ in range(3):
            hook.apply_config(hook_conf())
        self.assertEqual('rbd', hook_conf().libvirt.images_type)
        self.assertEqual('fastrbd', hook._state['requested'])
        self.assertIn('fastclone', hook_conf())

    def test_apply_config_after_a_new_request_follows_it(self):
        hook.install()
        self.flags(images_type='fastrbd', group='libvirt')
        hook.apply_config(hook_conf())
        self.flags(images_type='qcow2', group='libvirt')
        hook.apply_config(hook_conf())
        self.assertEqual('qcow2', hook_conf().libvirt.images_type)
        self.assertEqual('qcow2', hook._state['requested'])

    def test_apply_config_leaves_other_types(self):
        self.flags(images_type='qcow2', group='libvirt')
        hook.apply_config(hook_conf())
        self.assertEqual('qcow2', hook_conf().libvirt.images_type)

    def test_fastrbd_left_unapplied_is_refused(self):
        hook.install()
        self.flags(images_type='fastrbd', group='libvirt')
        exc = self.assertRaises(fc_exception.HookNotInstalled,
                                nova_imagebackend.Backend, False)
        self.assertIn('nova-compute-fastrbd', str(exc))

    def test_announces_once_at_startup(self):
        hook.install()
        self.flags(images_type='fastrbd', group='libvirt')
        hook.apply_config(hook_conf())
        with mock.patch.object(hook.LOG, 'info', autospec=True) as info, \
                mock.patch('fastclone_backend.cache.workdir.sweep_quietly',
                           autospec=True) as sweep:
            nova_imagebackend.Backend(False)
            nova_imagebackend.Backend(False)
        self.assertEqual(1, info.call_count)
        sweep.assert_called_once_with(hook_conf())   # the start-up sweep
        args = info.call_args[0][1]
        self.assertEqual('fastrbd', args['req'])
        self.assertEqual('vms', args['pool'])
        self.assertEqual('images', args['pools'])


# nova-compute-fastrbd's main with nova-compute's own main replaced, in a
# fresh interpreter (nova.cmd must be the first Nova import of a process).
CONSOLE_SCRIPT = """
import sys
from unittest import mock
from fastclone_backend.cmd import compute as fc_compute
from fastclone_backend import hook
import nova.cmd.compute
def fake_main():
    print('hook installed: %s' % hook.installed())
    return 7
with mock.patch.object(nova.cmd.compute, 'main', fake_main):
    sys.exit(fc_compute.main())
"""


class ConsoleScriptTestCase(base.TestCase):

    def test_installs_hook_then_runs_nova_compute(self):
        env = dict(os.environ)
        env.pop('OS_NOVA_DISABLE_EVENTLET_PATCHING', None)
        proc = subprocess.run([sys.executable, '-c', CONSOLE_SCRIPT],
                              capture_output=True, text=True, env=env,
                              timeout=120)
        self.assertEqual(7, proc.returncode, proc.stderr[-2000:])
        self.assertEqual('hook installed: True', proc.stdout.strip())


def hook_conf():
    import nova.conf
    return nova.conf.CONF
