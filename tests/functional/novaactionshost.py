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

"""Nova itself on FastRbd disks: the scenarios, run in their own process.

Not collected by the suite (no ``test_`` prefix): ``test_nova_actions.py``
runs ``python -m tests.functional.novaactionshost OUT.json`` in a
subprocess, because importing ``nova.tests.fixtures`` monkey-patches
eventlet into the importing process.

Each test case is Nova's own libvirt functional base
(``nova/tests/functional/libvirt/base.py``, ``ServersTestBase``): API,
conductor, scheduler, placement and two nova-compute services in this
process (a third, stock one for live migration to stock rbd), the real
``ComputeManager`` and ``LibvirtDriver`` on Nova's fakelibvirt.  Unlike
Nova's own tests, the image side is real:

* the image backend is not mocked (no ``LibvirtImageBackendFixture``, no
  mocked ``_create_image`` or ``_get_local_gb_info``): fastrbd is activated
  as an operator's nova-compute-fastrbd does (``hook.install()``, then the
  fastrbd host's settings from ``deploysettings``, then
  ``hook.apply_config``), so every disk is made by FastRbd in the lab's
  Ceph;
* Nova's image API talks to the lab's Glance (no ``GlanceFixture``).

The lab and the images come from the environment (``FASTCLONE_*`` as
``tools/lab env`` prints them, ``FASTCLONE_NOVA_RAW_IMAGE``,
``FASTCLONE_NOVA_QCOW2_IMAGE``, ``FASTCLONE_NOVA_FILE_IMAGE`` (raw, in
Glance's file store) and ``FASTCLONE_NOVA_SPARE_RAW_IMAGE``: ids of images
the parent uploaded, all of the same data;
``FASTCLONE_NOVA_PRECACHE_IMAGE``: a qcow2 image no other scenario uses,
uploaded for this run, so it has no cached base yet;
``FASTCLONE_NOVA_CONCURRENCY``: ``eventlet`` or ``threading``, what Nova
must be running on, chosen by the parent with Nova's own
``OS_NOVA_DISABLE_EVENTLET_PATCHING``).
"""

# Nova's own monkey patching first, before anything imports eventlet, where
# each release's functional tests have it: nova.tests.functional (Nova 31:
# ``import nova.monkey_patch``; 33, 34: ``monkey_patch.patch()``), else
# nova.test (Nova 32; 31 too): native threading with
# OS_NOVA_DISABLE_EVENTLET_PATCHING=1, eventlet otherwise.
import nova.tests.functional  # noqa: F401,H306
import nova.test  # noqa: F401,H306

import contextlib
import inspect
import json
import os
import sys
import time
import types
import unittest
from unittest import mock
import warnings

import fixtures
from lxml import etree
from oslo_utils import units
from sqlalchemy import exc as sqla_exc

from fastclone_backend.cache import naming
from fastclone_backend import deploysettings
from fastclone_backend import hook
from fastclone_backend.spawn import cachedbase
from fastclone_backend.spawn import fastrbd as fc_imagebackend

from nova.api import auth as nova_auth
from nova.compute import manager as compute_manager
from nova import conf as nova_conf
from nova import monkey_patch
from nova.tests import fixtures as nova_fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional import integrated_helpers
from nova.tests.functional.libvirt import base
from nova import utils as nova_utils
from nova.virt.libvirt import driver as nova_driver
from nova.virt.libvirt import imagebackend as nova_imagebackend
from nova.virt.libvirt import imagecache

CONF = nova_conf.CONF
ENV = os.environ
TINY = '1'    # Nova's default flavors: m1.tiny, root_gb 1
SMALL = '2'   # m1.small, root_gb 20
# polls of a booting server (0.5 s each; Nova's helpers give it 10): Nova
# writes and imports ephemeral and swap disks in full
BOOT_POLLS = 60
HEAD = 4 << 20   # bytes of a disk compared with its image's


def eventlet_patched():
    """Did Nova's start-up monkey-patch this process with eventlet?

    ``nova.monkey_patch.is_patched`` from Nova 32; Nova 31 patches at the
    import of ``nova.monkey_patch`` and records nothing, so ask eventlet.
    """
    is_patched = getattr(monkey_patch, 'is_patched', None)
    if is_patched is not None:
        return is_patched()
    from eventlet import patcher
    return patcher.is_monkey_patched('thread')


class LabGlance(fixtures.Fixture):
    """In place of Nova's GlanceFixture: Nova's real image API, lab Glance.

    There is no Keystone in the lab; the lab's Glance takes any token (its
    test-only auth filter), so the API's request context carries the lab
    token as keystonemiddleware would put the user's token there.
    """

    def __init__(self, test):
        super().__init__()
        self.test = test

    def _setUp(self):
        self.useFixture(nova_fixtures.ConfPatcher(
            group='glance', api_servers=[ENV['FASTCLONE_GLANCE_URL']]))


def _with_lab_token(create_context):
    def _create_context(env, **kwargs):
        ctx = create_context(env, **kwargs)
        ctx.auth_token = ENV['FASTCLONE_GLANCE_TOKEN']
        return ctx
    return _create_context


class Ceph:
    """The lab's Ceph as its admin sees it, for assertions."""

    def __init__(self):
        import rados
        self.client = rados.Rados(conffile=ENV['FASTCLONE_CEPH_CONF'],
                                  rados_id=ENV['FASTCLONE_CEPH_ADMIN_USER'])
        self.client.connect(timeout=15)

    def close(self):
        self.client.shutdown()

    def names(self, pool):
        import rbd
        with self.client.open_ioctx(pool) as ioctx:
            return set(rbd.RBD().list(ioctx))

    def everywhere(self):
        """{(pool, image name)} of every pool."""
        return {(pool, name) for pool in self.client.list_pools()
                for name in self.names(pool)}

    @contextlib.contextmanager
    def image(self, pool, name, read_only=True):
        import rbd
        with self.client.open_ioctx(pool) as ioctx:
            with rbd.Image(ioctx, name, read_only=read_only) as image:
                yield image

    def disk(self, pool, name):
        """(size, (parent pool, parent image, parent snap) or None)."""
        import rbd
        with self.image(pool, name) as image:
            try:
                parent = image.parent_info()
            except rbd.ImageNotFound:
                parent = None
            return image.size(), parent

    def is_clone_v2(self, pool, name):
        import rbd
        with self.image(pool, name) as image:
            return bool(image.op_features() &
                        rbd.RBD_OPERATION_FEATURE_CLONE_CHILD)

    def min_compat_client(self, release=None):
        """Set require_min_compat_client (or read it); the old value."""
        ret, out, err = self.client.mon_command(json.dumps(
            {'prefix': 'osd get-require-min-compat-client'}), b'')
        assert ret == 0, err
        if release:
            ret, _, err = self.client.mon_command(json.dumps(
                {'prefix': 'osd set-require-min-compat-client',
                 'version': release}), b'')
            assert ret == 0, err
        return out.decode().strip()

    def protect(self, pool, name, snap, protected):
        with self.image(pool, name, read_only=False) as image:
            if protected:
                image.protect_snap(snap)
            else:
                image.unprotect_snap(snap)

    def images_named(self, text):
        """['pool/image <- parent (size)'] of every image named with text."""
        found = []
        for pool, name in sorted(self.everywhere()):
            if text not in name:
                continue
            size, parent = self.disk(pool, name)
            found.append('%s/%s%s (%d MiB)' % (
                pool, name, ' <- %s/%s@%s' % parent if parent else '',
                size >> 20))
        return found

    def read(self, pool, name, offset, length):
        with self.image(pool, name) as image:
            return image.read(offset, length)

    def rbd_id(self, pool, name):
        """Ceph's id of the image: a disk made anew gets another one."""
        with self.image(pool, name) as image:
            return image.id()

    def snaps(self, pool, name):
        with self.image(pool, name) as image:
            return sorted(s['name'] for s in image.list_snaps())


class NetworkDisks(fixtures.Fixture):
    """RBD disks in fakelibvirt's domain XML, as Nova 34's fakelibvirt has.

    Nova 31 to 33's fakelibvirt (``nova/tests/fixtures/libvirt.py``) keeps
    a network disk's type but drops its ``<source protocol='rbd'
    name='vms/..._disk'>`` (and ``<auth>``) from the XML its domains give
    back: Nova's own ``libvirt_utils.find_disk`` then finds no root disk
    (snapshot and shelve fail with "Can't retrieve root device path") and
    the guest's XML names no RBD image.  Real libvirt keeps the source, and
    so does Nova 34's fake (``_parse_disk_info`` and ``Domain.XMLDesc``
    render ``source_protocol``); on releases whose fake lacks it, this does
    the same: the scenarios run and assert the same on every release.
    """

    def _setUp(self):
        if 'source_protocol' in inspect.getsource(
                fakelibvirt._parse_disk_info):
            return   # Nova 34: its own fake does it
        parse = fakelibvirt._parse_disk_info
        xml_desc = fakelibvirt.Domain.XMLDesc

        def parse_disk_info(element):
            info = parse(element)
            source = element.find('./source')
            if source is not None and source.get('protocol'):
                info['source_protocol'] = source.get('protocol')
                info['source_name'] = source.get('name')
                info['source_hosts'] = [(h.get('name'), h.get('port'))
                                        for h in source.findall('./host')]
                auth = element.find('./auth')
                if auth is not None:
                    info['auth_username'] = auth.get('username')
                    secret = auth.find('./secret')
                    info['auth_secret'] = (None if secret is None else (
                        secret.get('type'), secret.get('uuid')))
            return info

        def render(domain, flags):
            tree = etree.fromstring(xml_desc(domain, flags))
            for element, info in zip(tree.findall('./devices/disk'),
                                     domain._def['devices']['disks']):
                if 'source_protocol' in info:
                    _network_source(element, info)
            return etree.tostring(tree, encoding='unicode')

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt._parse_disk_info', parse_disk_info))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.XMLDesc', render))


def _network_source(element, info):
    """A disk element's source as libvirt writes a network disk's."""
    for old in element.findall('./source') + element.findall('./auth'):
        element.remove(old)
    if info.get('auth_username'):
        auth = etree.SubElement(element, 'auth',
                                username=info['auth_username'])
        if info.get('auth_secret'):
            kind, uuid = info['auth_secret']
            etree.SubElement(auth, 'secret', type=kind or 'ceph',
                             uuid=uuid or '')
    source = etree.SubElement(element, 'source',
                              protocol=info['source_protocol'],
                              name=info['source_name'] or '')
    for name, port in info['source_hosts']:
        etree.SubElement(source, 'host', name=name or '', port=port or '')


class FastRbdNovaTest(base.ServersTestBase):
    """ServersTestBase with the real image backend and the lab's Glance."""

    ADMIN_API = True
    microversion = 'latest'

    def setUp(self):
        # ServersTestBase.setUp, without LibvirtImageBackendFixture and the
        # mocks of _create_image and _get_local_gb_info: what they fake is
        # what this suite tests.
        self.flags(instances_path=self.useFixture(fixtures.TempDir()).path)
        # the wheel installs Nova's paste config under sys.prefix, not
        # where ConfFixture looks for it (next to the nova package)
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        self.computes = {}
        self.compute_rp_uuids = {}
        self._activate_fastrbd()
        with mock.patch.object(nova_fixtures, 'GlanceFixture', LabGlance):
            integrated_helpers._IntegratedTestBase.setUp(self)
        # Nova 34's DB API still uses orm.noload(), deprecated in SQLAlchemy
        # 2.1; Nova's WarningsFixture makes SADeprecationWarning an error
        # (its CI pins SQLAlchemy 2.0): not this suite's subject
        warnings.filterwarnings(
            'ignore', message=r'The noload\(\) option is deprecated',
            category=sqla_exc.SADeprecationWarning)
        # Nova parsed its config (nova.config.parse_args, in ConfFixture)
        # with the hook installed: fastrbd now runs as rbd
        self.assertEqual('rbd', CONF.libvirt.images_type)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.api.auth.NovaKeystoneContext._create_context',
            _with_lab_token(nova_auth.NovaKeystoneContext._create_context)))
        self.useFixture(nova_fixtures.CGroupsFixture())
        self.libvirt = self.useFixture(nova_fixtures.LibvirtFixture())
        self.useFixture(NetworkDisks())
        self.useFixture(nova_fixtures.OSBrickFixture())
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.libvirt_utils.is_valid_hostname',
            return_value=True))
        self.useFixture(fixtures.MockPatch(
            'nova.privsep.utils.supports_direct_io', return_value=True))
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.host.Host.get_online_cpus',
            return_value=set(range(16))))
        _p = mock.patch('nova.virt.libvirt.host.Host.get_connection')
        self.mock_conn = _p.start()
        self.addCleanup(_p.stop)

        # the concurrency mode the parent asked for is the one Nova runs in
        self.assertEqual(ENV['FASTCLONE_NOVA_CONCURRENCY'] == 'eventlet',
                         eventlet_patched())
        self.ceph = Ceph()
        self.addCleanup(self.ceph.close)
        self.vms_pool = ENV['FASTCLONE_VMS_POOL']
        self.images_pool = ENV['FASTCLONE_IMAGES_POOL']
        self.before = self.ceph.everywhere()
        for host in ('compute1', 'compute2'):
            self.start_compute(host)
            backend = self.computes[host].driver.image_backend
            self.assertIs(fc_imagebackend.FastRbd, backend.backend('rbd'))

    def _activate_fastrbd(self):
        """As nova-compute-fastrbd: the hook, then the host's settings.

        Nova's own ``config.parse_args`` (run by ``ConfFixture`` in the base's
        setUp) then finds ``images_type = fastrbd`` and the hook turns it
        into rbd, as in nova-compute-fastrbd.
        """
        hook.install()
        facts = {'vms_pool': ENV['FASTCLONE_VMS_POOL'],
                 'ceph_conf': ENV['FASTCLONE_CEPH_CONF'],
                 'nova_user': ENV['FASTCLONE_NOVA_RBD_USER'],
                 'images_pool': ENV['FASTCLONE_IMAGES_POOL']}
        for section, option, value in deploysettings.render(
                deploysettings.NOVA_COMPUTE, facts):
            if section == 'fastclone':
                from fastclone_backend import conf as fc_conf
                fc_conf.register_opts(CONF)
            self.flags(group=section, **{option: value})
        self.flags(rbd_secret_uuid='7d5c6e6a-5d4e-4a53-9f8e-1f1d0c1a2b3c',
                   group='libvirt')

    # assertions on Ceph

    def assert_root_disk(self, server, parent, root_gb):
        name = '%s_disk' % server['id']
        self.assertIn(name, self.ceph.names(self.vms_pool))
        size, got_parent = self.ceph.disk(self.vms_pool, name)
        self.assertEqual(parent, got_parent,
                         '%s/%s is not a clone of %s' % (
                             self.vms_pool, name, parent))
        self.assertEqual(root_gb * units.Gi, size)
        # the guest sees the image's data (every image has the same)
        self.assertEqual(self.image_head(), self.ceph.read(
            self.vms_pool, name, 0, HEAD))

    def image_head(self):
        return self.ceph.read(self.images_pool,
                              ENV['FASTCLONE_NOVA_RAW_IMAGE'], 0, HEAD)

    def _delete_server(self, server):
        """Nova's delete, after noting the server's RBD images (SEEN)."""
        SEEN.setdefault(self.id(), {})[server['id']] = {
            'before_delete': self.ceph.images_named(server['id'])}
        super()._delete_server(server)

    def assert_no_leftovers(self, server):
        """Nothing named after the server; nothing new but cached bases."""
        now = self.ceph.everywhere()
        left = {(pool, name) for pool, name in now if server['id'] in name}
        seen = SEEN.setdefault(self.id(), {}).setdefault(server['id'], {})
        seen['left'] = sorted('%s/%s' % i for i in left)
        seen['bases'] = sorted('%s/%s' % (pool, name)
                               for pool, name in now - self.before
                               if name.startswith(naming.BASE_PREFIX))
        self.assertEqual(set(), left,
                         'images of deleted server %s' % server['id'])
        new = {(pool, name) for pool, name in now - self.before
               if not (pool == self.vms_pool and
                       name.startswith(naming.BASE_PREFIX))}
        seen['left'] = sorted(set(seen['left']) | {'%s/%s' % i for i in new})
        self.assertEqual(set(), new, 'images left since the test started')

    def raw_parent(self, image_id):
        return (self.images_pool, image_id, 'snap')

    def cache_parent(self, image_id):
        return (self.vms_pool, naming.base_name(image_id), naming.SNAP)

    def assert_image_gone(self, server, suffix):
        self.assertNotIn('%s_%s' % (server['id'], suffix),
                         self.ceph.names(self.vms_pool))

    def flavor(self, disk):
        return self._create_flavor(memory_mb=512, vcpu=1, disk=disk,
                                   ephemeral=0)

    def base_dir_files(self):
        """What Nova's download path wrote in the hosts' ``_base``."""
        path = cachedbase.nova_base_dir()
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def domain_xml(self, server):
        host = server['OS-EXT-SRV-ATTR:host']
        conn = self.computes[host].driver._host.get_connection()
        return conn.lookupByUUIDString(server['id']).XMLDesc(0)

    def wait_image_active(self, image_id, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            # Nova's image proxy API (up to 2.35), through Nova's real
            # image API to the lab's Glance
            with nova_utils.temporary_mutation(self.api, microversion='2.35'):
                image = self.api.get_image(image_id)
            if image['status'] == 'ACTIVE':
                return image
            self.assertLess(time.monotonic(), deadline,
                            'image %s is %s' % (image_id, image['status']))
            time.sleep(0.2)

    def boot(self, image_id, flavor_id=TINY, host=None, **extra):
        """An ACTIVE server; extra: more of the create request's body."""
        body = self._build_server(image_uuid=image_id, flavor_id=flavor_id,
                                  networks='none', host=host)
        body.update(extra)
        server = self.api.post_server({'server': body})
        self.addCleanup(self._cleanup_server, server)
        return self._wait_for_state_change(server, 'ACTIVE',
                                           max_retries=BOOT_POLLS)

    def _cleanup_server(self, server):
        try:
            self.api.delete_server(server['id'])
        except Exception:   # already deleted by the test
            pass

    def assert_boots_as(self, image_id, parent, clone_v2=True, downloaded=()):
        """Boot: its root disk, what Nova downloaded; delete: nothing left.

        parent None: a flat disk (Nova's download and rbd import); else a
        clone of parent, a clone v2 or not as clone_v2 says.
        """
        server = self.boot(image_id)
        self.assertEqual('ACTIVE', server['status'])
        self.assert_root_disk(server, parent, 1)
        if parent is not None:
            self.assertEqual(clone_v2, self.ceph.is_clone_v2(
                self.vms_pool, '%s_disk' % server['id']))
        self.assertEqual([imagecache.get_cache_fname(i) for i in downloaded],
                         self.base_dir_files())
        self._delete_server(server)
        self.assert_no_leftovers(server)


class BootTest(FastRbdNovaTest):

    def test_boot_raw_then_delete(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        self.assert_boots_as(image_id, self.raw_parent(image_id))

    def test_boot_qcow2_then_delete(self):
        image_id = ENV['FASTCLONE_NOVA_QCOW2_IMAGE']
        self.assert_boots_as(image_id, self.cache_parent(image_id))
        # the cached base stays for the lifecycle pass
        self.assertIn(naming.base_name(image_id),
                      self.ceph.names(self.vms_pool))


class ActionsTest(FastRbdNovaTest):

    def test_rescue_unrescue(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        server = self.boot(image_id)
        server = self._rescue_server(server)
        self.assertEqual('RESCUE', server['status'])
        # the rescue disk is a clone too, of the instance's image
        size, parent = self.ceph.disk(self.vms_pool,
                                      '%s_disk.rescue' % server['id'])
        self.assertEqual(self.raw_parent(image_id), parent)
        self.assert_root_disk(server, self.raw_parent(image_id), 1)
        server = self._unrescue_server(server)
        self.assertEqual('ACTIVE', server['status'])
        self.assert_image_gone(server, 'disk.rescue')
        self.assert_root_disk(server, self.raw_parent(image_id), 1)
        self._delete_server(server)
        self.assert_no_leftovers(server)

    def test_resize_revert(self):
        image_id = ENV['FASTCLONE_NOVA_QCOW2_IMAGE']
        server = self.boot(image_id)
        source = server['OS-EXT-SRV-ATTR:host']
        bigger = self.flavor(disk=2)
        server = self._resize_server(server, bigger)
        self.assertNotEqual(source, server['OS-EXT-SRV-ATTR:host'])
        self.assert_root_disk(server, self.cache_parent(image_id), 2)
        server = self._revert_resize(server)
        self.assertEqual(source, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assert_root_disk(server, self.cache_parent(image_id), 1)
        self.assertEqual([], self.ceph.snaps(self.vms_pool,
                                             '%s_disk' % server['id']))
        self._delete_server(server)
        self.assert_no_leftovers(server)

    def test_resize_confirm(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        server = self.boot(image_id)
        source = server['OS-EXT-SRV-ATTR:host']
        bigger = self.flavor(disk=2)
        server = self._resize_server(server, bigger)
        server = self._confirm_resize(server)
        self.assertNotEqual(source, server['OS-EXT-SRV-ATTR:host'])
        self.assert_root_disk(server, self.raw_parent(image_id), 2)
        self.assertEqual([], self.ceph.snaps(self.vms_pool,
                                             '%s_disk' % server['id']))
        self._delete_server(server)
        self.assert_no_leftovers(server)

    def test_cold_migrate(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        server = self.boot(image_id)
        source = server['OS-EXT-SRV-ATTR:host']
        server = self._migrate_server(server)
        server = self._confirm_resize(server)
        self.assertNotEqual(source, server['OS-EXT-SRV-ATTR:host'])
        self.assert_root_disk(server, self.raw_parent(image_id), 1)
        self._delete_server(server)
        self.assert_no_leftovers(server)

    def test_rebuild_to_another_image(self):
        server = self.boot(ENV['FASTCLONE_NOVA_RAW_IMAGE'])
        other = ENV['FASTCLONE_NOVA_QCOW2_IMAGE']
        server = self._rebuild_server(server, other)
        self.assertEqual(other, server['image']['id'])
        self.assert_root_disk(server, self.cache_parent(other), 1)
        self._delete_server(server)
        self.assert_no_leftovers(server)

    def test_snapshot_then_boot_from_it(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        self.assert_snapshot_boots(self.boot(image_id))

    def test_snapshot_of_a_server_on_a_cached_base(self):
        # its disk's parent is in the instances pool: the snapshot must
        # still go to Glance's pool (Nova would put it beside the parent)
        image_id = ENV['FASTCLONE_NOVA_QCOW2_IMAGE']
        server = self.boot(image_id)
        self.assert_root_disk(server, self.cache_parent(image_id), 1)
        self.assert_snapshot_boots(server)

    def assert_snapshot_boots(self, server):
        snap_id = self.api.post_server_action(
            server['id'], {'createImage': {'name': 'fastclone-nova-snap'}}
        )['image_id']
        self.addCleanup(self._delete_image_quietly, snap_id)
        self.wait_image_active(snap_id)
        # Nova's direct snapshot: a flat image in Glance's pool, with snap
        self.assertIn(snap_id, self.ceph.names(self.images_pool))
        self.assertNotIn(snap_id, self.ceph.names(self.vms_pool))
        self.assertIsNone(self.ceph.disk(self.images_pool, snap_id)[1])
        self.assertEqual(['snap'], self.ceph.snaps(self.images_pool, snap_id))
        self.assertEqual([], self.ceph.snaps(self.vms_pool,
                                             '%s_disk' % server['id']))
        second = self.boot(snap_id)
        self.assert_root_disk(second, self.raw_parent(snap_id), 1)
        self._delete_server(server)
        self._delete_server(second)
        self._delete_image_quietly(snap_id)
        self.assertNotIn(snap_id, self.ceph.names(self.images_pool))
        self.assert_no_leftovers(server)
        self.assert_no_leftovers(second)

    def _delete_image_quietly(self, image_id):
        try:
            with nova_utils.temporary_mutation(self.api, microversion='2.35'):
                self.api.delete_image(image_id)
        except Exception:   # already gone
            pass

    def test_shelve_unshelve_on_the_other_compute(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        server = self.boot(image_id)
        source = server['OS-EXT-SRV-ATTR:host']
        server = self._shelve_server(server)
        self.assertEqual('SHELVED_OFFLOADED', server['status'])
        self.assert_image_gone(server, 'disk')
        other = ({'compute1', 'compute2'} - {source}).pop()
        self.api.post_server_action(server['id'],
                                    {'unshelve': {'host': other}})  # 2.91
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertNotEqual(source, server['OS-EXT-SRV-ATTR:host'])
        # Nova clones from the shelved snapshot, then flattens the disk
        # (LibvirtDriver._try_fetch_image_cache) so the snapshot can go
        name = '%s_disk' % server['id']
        self.assertIn(name, self.ceph.names(self.vms_pool))
        self.assertEqual((units.Gi, None), self.ceph.disk(self.vms_pool, name))
        self._delete_server(server)
        self.assert_no_leftovers(server)

    def test_hard_reboot(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        server = self.boot(image_id)
        server = self._reboot_server(server, hard=True)
        self.assertEqual('ACTIVE', server['status'])
        self.assert_root_disk(server, self.raw_parent(image_id), 1)
        self._delete_server(server)
        self.assert_no_leftovers(server)


class CloneChoiceTest(FastRbdNovaTest):
    """Which disk Nova gets: clone in place, cached base, or a download."""

    def test_file_store_raw_goes_through_the_cache(self):
        image_id = ENV['FASTCLONE_NOVA_FILE_IMAGE']
        self.assert_boots_as(image_id, self.cache_parent(image_id))

    def test_no_clone_no_cache_then_nova_downloads(self):
        """Refused clone, cache off: Nova's own fallback, as stock rbd."""
        self.flags(cache_enabled=False, group='fastclone')
        image_id = ENV['FASTCLONE_NOVA_FILE_IMAGE']
        # clone_fallback_to_fetch: download into _base, rbd import
        self.assert_boots_as(image_id, None, downloaded=[image_id])

    def test_clone_v1_where_the_cluster_requires_it(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        self.with_min_compat_client('luminous')
        self.assert_boots_as(image_id, self.raw_parent(image_id),
                             clone_v2=False)

    def test_unprotected_snapshot_cloned_as_v2(self):
        image_id = self.unprotected_image()
        self.assert_boots_as(image_id, self.raw_parent(image_id))

    def test_unprotected_snapshot_where_clone_v1_downloads(self):
        """librbd cannot clone v1 from it: refused, then Nova downloads."""
        self.flags(cache_enabled=False, group='fastclone')
        image_id = self.unprotected_image()
        self.with_min_compat_client('luminous')
        self.assert_boots_as(image_id, None, downloaded=[image_id])

    def with_min_compat_client(self, release):
        before = self.ceph.min_compat_client(release)
        self.addCleanup(self.ceph.min_compat_client, before)

    def unprotected_image(self):
        """The spare raw image with its snapshot unprotected, for a test.

        Protected again at cleanup (Glance's delete needs it).
        """
        image_id = ENV['FASTCLONE_NOVA_SPARE_RAW_IMAGE']
        self.ceph.protect(self.images_pool, image_id, 'snap', False)
        self.addCleanup(self.ceph.protect, self.images_pool, image_id,
                        'snap', True)
        return image_id


# {test id: {server id: {'before_delete': [...], 'left': [...],
# 'bases': [...]}}}: what each scenario left in Ceph, for the report;
# module-level because Nova's TestCase clears its attributes at cleanup
SEEN = {}

# an ISO 9660 primary volume descriptor: 'CD001' at byte 1 of sector 16,
# the volume identifier 40 bytes further; Nova labels config drives config-2
ISO_PVD = 16 * 2048
CONFIG_DRIVE_LABEL = b'config-2'
# Nova's ephemeral disk of an image without os_type: vfat, labelled
# ephemeral0 (mkfs.fat makes FAT32 at 1 GB): its boot sector's label and type
FAT32_LABEL = (71, b'ephemeral0 FAT32   ')
# mkswap's signature ends the first 4 KiB page
SWAP_SIGNATURE = b'SWAPSPACE2'


class ConfigDriveTest(FastRbdNovaTest):

    def test_config_drive_imported_into_rbd(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        server = self.boot(image_id, config_drive=True)
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual('True', server['config_drive'])
        self.assert_root_disk(server, self.raw_parent(image_id), 1)
        # Nova built the ISO in the instance directory, imported it as
        # <uuid>_disk.config (a plain image, no parent) and removed the file
        name = '%s_disk.config' % server['id']
        self.assertIn(name, self.ceph.names(self.vms_pool))
        size, parent = self.ceph.disk(self.vms_pool, name)
        self.assertIsNone(parent)
        self.assertGreater(size, ISO_PVD + 2048)
        pvd = self.ceph.read(self.vms_pool, name, ISO_PVD, 48)
        self.assertEqual(b'CD001', pvd[1:6])
        self.assertEqual(CONFIG_DRIVE_LABEL,
                         pvd[40:40 + len(CONFIG_DRIVE_LABEL)])
        self.assertFalse(os.path.exists(os.path.join(
            CONF.instances_path, server['id'], 'disk.config')))
        # the guest gets it from RBD
        self.assertIn('%s/%s' % (self.vms_pool, name),
                      self.domain_xml(server))
        self._delete_server(server)
        self.assert_image_gone(server, 'disk.config')
        self.assert_no_leftovers(server)


class LocalDisksTest(FastRbdNovaTest):

    def test_ephemeral_and_swap_disks(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        flavor = self._create_flavor(memory_mb=512, vcpu=1, disk=1,
                                     ephemeral=1, swap=512)
        server = self.boot(image_id, flavor_id=flavor)
        self.assertEqual('ACTIVE', server['status'])
        # the root disk is still a clone; the other two are Nova's own
        # (made in _base by mkfs.vfat/mkswap, imported into RBD), full size.
        # The API turns the flavor's ephemeral into a blank block device
        # mapping (compute.api, _get_flavor_defined_bdms), so the disk is
        # Nova's disk.eph0, not the flavor-only disk.local
        self.assert_root_disk(server, self.raw_parent(image_id), 1)
        self.assert_image_gone(server, 'disk.local')
        local = '%s_disk.eph0' % server['id']
        swap = '%s_disk.swap' % server['id']
        self.assertEqual((units.Gi, None), self.ceph.disk(self.vms_pool,
                                                          local))
        self.assertEqual((512 * units.Mi, None),
                         self.ceph.disk(self.vms_pool, swap))
        offset, label = FAT32_LABEL
        self.assertEqual(label, self.ceph.read(self.vms_pool, local, offset,
                                               len(label)))
        self.assertEqual(b'\x55\xaa',
                         self.ceph.read(self.vms_pool, local, 510, 2))
        self.assertEqual(SWAP_SIGNATURE, self.ceph.read(
            self.vms_pool, swap, 4096 - len(SWAP_SIGNATURE),
            len(SWAP_SIGNATURE)))
        # their templates, Nova's as on a stock rbd host
        self.assertEqual(['ephemeral_1_', 'swap_512'], [
            name[:len('ephemeral_1_')] for name in self.base_dir_files()])
        xml = self.domain_xml(server)
        for name in ('%s_disk' % server['id'], local, swap):
            self.assertIn('%s/%s' % (self.vms_pool, name), xml)
        self._delete_server(server)
        self.assert_image_gone(server, 'disk.eph0')
        self.assert_image_gone(server, 'disk.swap')
        self.assert_no_leftovers(server)


class PrecacheTest(FastRbdNovaTest):
    """Nova's image precache API (2.81) through the real API."""

    def precache(self, image_ids):
        """Ask for the images on an aggregate of both computes; wait."""
        agg = self.api.post_aggregate(
            {'aggregate': {'name': 'fastclone-precache'}})
        for host in sorted(self.computes):
            self.api.add_host_to_aggregate(agg['id'], host)
        self.api.api_post('/os-aggregates/%s/images' % agg['id'],
                          {'cache': [{'id': i} for i in image_ids]},
                          check_response_status=[202])
        self.notifier.wait_for_versioned_notifications(
            'aggregate.cache_images.end')
        return self.notifier.wait_for_versioned_notifications(
            'aggregate.cache_images.progress', n_events=len(self.computes))

    def test_aggregate_precache_then_boot(self):
        qcow2 = ENV['FASTCLONE_NOVA_PRECACHE_IMAGE']   # no base yet
        raw = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        base = naming.base_name(qcow2)
        self.assertNotIn(base, self.ceph.names(self.vms_pool))
        before = dict(naming.STATS)
        progress = self.precache([qcow2, raw])
        self.assertEqual(sorted(self.computes), sorted(
            n['payload']['nova_object.data']['host'] for n in progress))
        for notification in progress:
            payload = notification['payload']['nova_object.data']
            self.assertEqual(sorted([qcow2, raw]),
                             sorted(payload['images_cached']))
            self.assertEqual([], payload['images_failed'])
        # one host populated the base, the other found it; the raw image
        # clones in place: nothing to do on either host
        log = self.stdlog.logger.output
        self.assertIn('1 cached, 3 existing, 0 errors, 0 unsupported, '
                      '0 skipped', log)
        self.assertIn('precache of image %s: nothing to do' % raw, log)
        self.assertEqual(1, naming.STATS['populations'] -
                         before.get('populations', 0))
        self.assertEqual(2, naming.STATS['precaches'] -
                         before.get('precaches', 0))
        self.assertIn(base, self.ceph.names(self.vms_pool))
        self.assertEqual((16 * units.Mi, None),
                         self.ceph.disk(self.vms_pool, base))
        self.assertEqual([naming.SNAP], self.ceph.snaps(self.vms_pool, base))
        self.assertEqual([], self.base_dir_files())
        new = self.ceph.everywhere() - self.before
        self.assertEqual({(self.vms_pool, base)}, new)

        server = self.boot(qcow2)
        self.assert_root_disk(server, self.cache_parent(qcow2), 1)
        self.assertEqual(1, naming.STATS['populations'] -
                         before.get('populations', 0))
        self.assertEqual(1, naming.STATS['hits'] - before.get('hits', 0))
        self.assertEqual([], self.base_dir_files())
        self._delete_server(server)
        self.assert_no_leftovers(server)
        self.assertIn(base, self.ceph.names(self.vms_pool))


class MoveHelpers:
    """What the move scenarios share: hosts, services, migrations, guests."""

    def other_host(self, host):
        return ({'compute1', 'compute2'} - {host}).pop()

    def force_down(self, host):
        """As an operator whose compute died: stopped, then forced down."""
        self.computes[host].stop()
        self.set_forced_down(host, True)

    def set_forced_down(self, host, forced_down):
        service = self.api.get_services(host=host, binary='nova-compute')[0]
        self.api.put_service_force_down(service['id'], forced_down)  # 2.53

    def newest_migration(self, server):
        migrations = self.api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']
        ).body['migrations']
        return max(migrations, key=lambda m: m['id'])

    def wait_newest_migration(self, server, status, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            migration = self.newest_migration(server)
            if migration['status'] == status:
                return migration
            self.assertLess(time.monotonic(), deadline,
                            'migration %s of %s is %s, not %s' % (
                                migration['id'], server['id'],
                                migration['status'], status))
            time.sleep(0.2)

    def defined_on(self, host, server):
        """Is the server's guest defined in host's (fake) libvirt?"""
        conn = self.computes[host].driver._host.get_connection()
        try:
            conn.lookupByUUIDString(server['id'])
        except fakelibvirt.libvirtError:
            return False
        return True

    def disk_id(self, server):
        name = '%s_disk' % server['id']
        self.assertIn(name, self.ceph.names(self.vms_pool))
        return self.ceph.rbd_id(self.vms_pool, name)


class EvacuateTest(MoveHelpers, FastRbdNovaTest):
    """Evacuate from a compute that is down; then that compute comes back.

    RBD is shared block storage (``Rbd.is_shared_block_storage()``, FastRbd
    inherits it), so Nova keeps the disk: the destination rebuilds on it
    (``ComputeManager.rebuild_instance``: ``on_shared_storage`` from
    ``LibvirtDriver.instance_on_disk()``; the root disk exists, so
    ``Image.cache`` makes nothing), and the source compute, when it starts
    again, destroys its stale guest without the disks
    (``_destroy_evacuated_instances``: ``check_instance_shared_storage_local``
    answers None for shared block storage, so the storage counts as shared).
    The computes of this process also share ``instances_path``; the RBD
    answer does not depend on it (``instance_on_disk`` ORs the two, the
    local check returns before looking at the path).
    """

    def test_evacuate_then_source_compute_returns(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        server = self.boot(image_id)
        source = server['OS-EXT-SRV-ATTR:host']
        other = self.other_host(source)
        disk_id = self.disk_id(server)
        self.force_down(source)
        # 2.94: the last microversion whose evacuate starts the server
        with nova_utils.temporary_mutation(self.api, microversion='2.94'):
            server = self._evacuate_server(server, expected_host=other,
                                           expected_state='ACTIVE')
        self.assertTrue(self.defined_on(other, server))
        # the very same disk, not a new clone
        self.assertEqual(disk_id, self.disk_id(server))
        self.assert_root_disk(server, self.raw_parent(image_id), 1)
        # the source's hypervisor still has the stale guest until it starts
        self.assertTrue(self.defined_on(source, server))
        self.restart_compute_service(source)
        self.set_forced_down(source, False)
        self._wait_for_migration_status(server, ['completed'])
        self.assertFalse(self.defined_on(source, server))
        # its cleanup kept the disk, which the evacuated server runs on
        self.assertEqual(disk_id, self.disk_id(server))
        self.assert_root_disk(server, self.raw_parent(image_id), 1)
        server = self._reboot_server(server, hard=True)
        self.assertEqual(other, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(disk_id, self.disk_id(server))
        self._delete_server(server)
        self.assert_no_leftovers(server)


class LiveMigrationBase(MoveHelpers, base.LibvirtMigrationMixin,
                        FastRbdNovaTest):
    """Live migration on RBD disks: shared block storage.

    Both computes run ``images_type = rbd`` (fastrbd runs as rbd) and
    ``Rbd.is_shared_block_storage()``, so ``_is_shared_block_storage`` holds
    on the source, ``block_migration: auto`` becomes False and no disk is
    made on the destination (``pre_live_migration`` skips
    ``_create_images_and_backing``).  Nova's ``LibvirtMigrationMixin``
    makes fakelibvirt complete the migration (its ``migrateToURI3`` stub
    defines the guest on the destination and completes the job).

    The computes of this process share ``instances_path``, so Nova finds
    ``is_shared_instance_path`` and would not clean the source up at all.
    Computes with their own instances path (the usual RBD deployment) do:
    the source's cleanup flags are computed here as Nova computes them for
    such a compute (``_live_migration_cleanup_flags`` on a copy of the
    migrate data without the shared path), and asserted: clean up, but
    not the disks.  The driver's cleanup itself gets Nova's own migrate
    data, so it keeps the shared instance directory.
    """

    def setUp(self):
        super().setUp()
        self.cleanup_flags = []
        original = compute_manager.ComputeManager._live_migration_cleanup_flags

        def cleanup_flags(manager, migrate_data, migr_ctxt=None):
            local = migrate_data.obj_clone()
            local.is_shared_instance_path = False
            flags = original(manager, local, migr_ctxt=migr_ctxt)
            self.cleanup_flags.append(flags)
            return flags
        self.useFixture(fixtures.MonkeyPatch(
            'nova.compute.manager.ComputeManager.'
            '_live_migration_cleanup_flags', cleanup_flags))

    def _migrate_stub(self, domain, destination, params, flags):
        """Nova's stub, and the source undefined as libvirt does it.

        Nova's driver always asks for ``VIR_MIGRATE_UNDEFINE_SOURCE``
        (``_parse_migration_flags``), which fakelibvirt ignores: the
        migrated guest would stay defined on the source.
        """
        self.migrate_flags = flags
        super()._migrate_stub(domain, destination, params, flags)
        if flags & fakelibvirt.VIR_MIGRATE_UNDEFINE_SOURCE:
            conn = self.src.driver._host.get_connection()
            conn.lookupByUUIDString(self.server['id']).undefine()

    def live_migrate(self, server, host, block_migration):
        self.server = server
        self.src = self.computes[server['OS-EXT-SRV-ATTR:host']]
        self.dest = self.computes[host]
        self.migrate_stub_ran = False
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': host, 'block_migration': block_migration}})
        self.wait_newest_migration(server, 'completed')
        self.assertTrue(self.migrate_stub_ran)
        # shared block storage: libvirt is not asked to copy the disks
        self.assertFalse(self.migrate_flags &
                         fakelibvirt.VIR_MIGRATE_NON_SHARED_INC)
        # the source cleans up (do_cleanup), without the disks
        self.assertEqual([(True, False)], self.cleanup_flags)
        self.cleanup_flags.clear()
        return self._wait_for_server_parameter(server, {
            'OS-EXT-SRV-ATTR:host': host, 'status': 'ACTIVE',
            'OS-EXT-STS:task_state': None})

    def assert_moved(self, server, source, host, disk_id, parent):
        self.assertTrue(self.defined_on(host, server))
        self.assertFalse(self.defined_on(source, server))
        self.assertEqual(disk_id, self.disk_id(server))
        self.assert_root_disk(server, parent, 1)
        self.assertEqual([], self.ceph.snaps(self.vms_pool,
                                             '%s_disk' % server['id']))


class LiveMigrateTest(LiveMigrationBase):
    """Live migration between FastRbd computes, there and back."""

    def test_live_migrate_there_auto_and_back_without_block(self):
        image_id = ENV['FASTCLONE_NOVA_QCOW2_IMAGE']
        server = self.boot(image_id)
        source = server['OS-EXT-SRV-ATTR:host']
        other = self.other_host(source)
        disk_id = self.disk_id(server)
        parent = self.cache_parent(image_id)
        server = self.live_migrate(server, other, 'auto')
        self.assert_moved(server, source, other, disk_id, parent)
        server = self.live_migrate(server, source, False)
        self.assert_moved(server, other, source, disk_id, parent)
        self._delete_server(server)
        self.assert_no_leftovers(server)


class LiveMigrateToStockRbdTest(LiveMigrationBase):
    """Live migration from a FastRbd compute to a stock ``rbd`` compute.

    All computes of this process share one CONF, and the hook has made
    ``images_type`` read ``rbd``: what a stock compute's nova.conf says.
    What differs on a stock compute is what the hook changes in code, and
    compute3 has none of it: its ``LibvirtDriver`` is built while
    ``imagebackend.Backend.__init__`` is Nova's own (the hook's saved
    original), so its ``image_backend`` maps 'rbd' to Nova's ``Rbd``
    exactly as an unpatched Nova does (``Backend`` is made only there, in
    ``LibvirtDriver.__init__``), and its ``manage_image_cache`` and
    ``cache_image`` are Nova's own again.  Its cleanup of RBD disks is
    Nova's anyway (``LibvirtDriver._cleanup_rbd``, with Nova's
    ``RBDDriver``).
    """

    def start_stock_compute(self, hostname):
        stock_init = nova_imagebackend.Backend.__init__.fastclone_original
        with mock.patch.object(nova_imagebackend.Backend, '__init__',
                               stock_init):
            self.start_compute(hostname)
        driver = self.computes[hostname].driver
        for method in ('manage_image_cache', 'cache_image'):
            original = getattr(nova_driver.LibvirtDriver, method)
            setattr(driver, method, types.MethodType(
                original.fastclone_original, driver))
        self.assertIs(nova_imagebackend.Rbd,
                      driver.image_backend.backend('rbd'))
        self.assertIs(nova_imagebackend.Rbd, driver.image_backend.backend())
        return driver

    def test_live_migrate_to_stock_then_delete_there(self):
        image_id = ENV['FASTCLONE_NOVA_RAW_IMAGE']
        # compute3 first, so that the server's cleanup runs before its stop
        self.start_stock_compute('compute3')
        server = self.boot(image_id, host='compute1')
        source = server['OS-EXT-SRV-ATTR:host']
        self.assertEqual('compute1', source)
        disk_id = self.disk_id(server)
        parent = self.raw_parent(image_id)
        server = self.live_migrate(server, 'compute3', 'auto')
        self.assert_moved(server, source, 'compute3', disk_id, parent)
        # stock Rbd runs the guest on it: a hard reboot remakes the domain
        # from its disks (LibvirtDriver._hard_reboot)
        server = self._reboot_server(server, hard=True)
        self.assert_moved(server, source, 'compute3', disk_id, parent)
        self._delete_server(server)
        self.assert_no_leftovers(server)


class _JsonResult(unittest.TextTestResult):
    """Each test's outcome, time and traceback, for the parent process."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}
        self._started = {}

    def startTest(self, test):
        self._started[test.id()] = time.monotonic()
        super().startTest(test)

    def _record(self, test, status, err=None):
        self.outcomes[test.id()] = {
            'status': status,
            'seconds': round(time.monotonic() - self._started.get(
                test.id(), time.monotonic()), 1),
            'detail': self._exc_info_to_string(err, test) if err else '',
            'rbd': SEEN.get(test.id(), {})}

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, 'pass')

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, 'fail', err)

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, 'error', err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes[test.id()] = {'status': 'skip', 'seconds': 0,
                                    'detail': reason}


def main(argv=None):
    """``python -m tests.functional.novaactionshost OUT.json [TEST...]``.

    Nova's TestCase clears its attributes after each test, which pytest's
    unittest support does not expect, so this runs them with unittest.
    """
    argv = sys.argv[1:] if argv is None else argv
    out, names = argv[0], argv[1:]
    loader = unittest.TestLoader()
    module = sys.modules[__name__]
    suite = (loader.loadTestsFromNames(names, module) if names
             else loader.loadTestsFromModule(module))
    runner = unittest.TextTestRunner(resultclass=_JsonResult, verbosity=2)
    result = runner.run(suite)
    with open(out, 'w') as f:
        json.dump(result.outcomes, f, indent=1)
    return 0 if result.wasSuccessful() else 1


if __name__ == '__main__':
    sys.exit(main())
