"""Servers through Nova's API on the lab's cloud tier, real guests booting.

On the lab's cloud tier (tests/functional/cloud.py): fast1 and fast2 run
fastrbd, stock1 Nova's own Rbd backend, all three on one vms pool (a mixed
fleet).  Servers are created with ``networks: none``, the guest images are
tools/lab.d/guest-image's alpha and beta, and every boot is proven by the
guest's marker on the console Nova hands out (os-getConsoleOutput): the
instance's uuid, the image's name and the sum of its disk's first 4 MiB.

The fleet (raw and qcow2 of alpha on each compute, booted at once) is made
once per module; the tests after the first boot act on its servers (reboot,
rebuild, snapshot, shelve, rescue, a compute's restart) and the last deletes
them all and looks for anything left of them in Ceph.
``FASTCLONE_CLOUD_SMOKE=1``: only the smoke set (raw and qcow2 on fast1, raw
on stock1, the hostile image, the delete), for CI (conftest.py deselects the
rest).
"""

import dataclasses
import os
import re
import subprocess
import time

import pytest

from fastclone_backend.cache import naming
from fastclone_lab import cloudboot
from fastclone_lab import guest
from tests.functional import cloud as cloudmod
from tests.functional.cloud import cloud  # noqa: F401 (fixture)

pytestmark = pytest.mark.cloud
smoke = pytest.mark.cloud_smoke

HOSTS = cloudmod.FASTRBD_HOSTS + cloudmod.STOCK_HOSTS
SMOKE = os.environ.get('FASTCLONE_CLOUD_SMOKE') == '1'
# (host, image key) of the fleet's servers
FLEET = [('fast1', 'raw'), ('fast1', 'qcow2'), ('stock1', 'raw')] + (
    [] if SMOKE else [('fast2', 'raw'), ('fast2', 'qcow2'),
                      ('stock1', 'qcow2')])
BOOT_TIMEOUT = 600     # TCG guests on a loaded 2-core machine
NAME = 'fastclone-cloud-'


@dataclasses.dataclass
class Image:
    id: str
    name: str             # the guest's name for it: the marker's image=
    sum: str              # the marker's sum=
    disk_format: str


@dataclasses.dataclass
class Boot:
    server_id: str
    host: str
    image: Image
    status: str = ''
    fault: object = None
    marker: object = None
    to_active: float = 0.0
    to_marker: float = 0.0


# ---------------------------------------------------------------- helpers
def _admin_rados(env):
    import rados
    client = rados.Rados(conffile=env['FASTCLONE_CEPH_CONF'],
                         rados_id=env['FASTCLONE_CEPH_ADMIN_USER'])
    client.connect(timeout=15)
    return client


def rbd_parent(env, pool, name):
    """(pool, image, snap) of an RBD image's parent; None if it has none."""
    import rbd
    client = _admin_rados(env)
    try:
        with client.open_ioctx(pool) as ioctx:
            with rbd.Image(ioctx, name, read_only=True) as img:
                try:
                    return img.parent_info()
                except rbd.ImageNotFound:
                    return None
    finally:
        client.shutdown()


def rbd_names(env) -> dict:
    """{pool: names of its images and of its trash entries}, both pools."""
    import rbd
    client = _admin_rados(env)
    found = {}
    try:
        for pool in (env['FASTCLONE_IMAGES_POOL'], env['FASTCLONE_VMS_POOL']):
            with client.open_ioctx(pool) as ioctx:
                names = set(rbd.RBD().list(ioctx))
                names |= {'trash:' + t['name']
                          for t in rbd.RBD().trash_list(ioctx)}
                found[pool] = names
    finally:
        client.shutdown()
    return found


def leftovers(env, ids) -> dict:
    """Every RBD image or trash entry (both pools) naming one of ids."""
    return {pool: sorted(n for n in names if any(i in n for i in ids))
            for pool, names in rbd_names(env).items()
            if any(i in n for n in names for i in ids)}


def glance_downloads(env, image_id) -> int:
    """How many times Glance served the image's data (its request log)."""
    path = os.path.join(env['FASTCLONE_LAB_DIR'], 'glance', 'log',
                        'uwsgi.log')
    with open(path) as f:
        return sum(1 for line in f
                   if 'GET /v2/images/%s/file' % image_id in line)


def plant(env, image_id, path):
    """Replace the bytes behind a Glance image's snapshot, as an admin."""
    client = _admin_rados(env)
    try:
        with client.open_ioctx(env['FASTCLONE_IMAGES_POOL']) as ioctx:
            cloudmod.conftest.replant(ioctx, image_id, path)
    finally:
        client.shutdown()


def domid(cloud, host, instance_name):  # noqa: F811
    """libvirt's id of the running domain (a new one at each QEMU start)."""
    try:
        return cloud.libvirt(host).virsh('domid', instance_name).strip()
    except RuntimeError:
        return None


def running_domains(cloud, host) -> dict:  # noqa: F811
    """{name: id} of the domains running on a host."""
    out = cloud.libvirt(host).virsh('list')
    doms = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].isdigit():
            doms[words[1]] = words[0]
    return doms


def wait_boot(cloud, server_id, want, old_domid=None,  # noqa: F811
              timeout=BOOT_TIMEOUT):
    """Wait for the guest's marker with the wanted fields.

    With old_domid: the marker of a new QEMU (another domain id).  Returns
    (marker, seconds).
    """
    start = time.monotonic()
    server = cloud.conn.compute.get_server(server_id)
    while True:
        text = cloud.console(server_id)
        marker = guest.parse_marker(text)
        new = old_domid is None or domid(
            cloud, server.compute_host, server.instance_name) not in (
                old_domid, None)
        if new and marker and all(marker.get(k) == v
                                  for k, v in want.items()):
            return marker, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError('no %s line with %s on the console of %s:'
                                 '\n%s' % (guest.MARKER, want, server_id,
                                           text[-2000:]))
        time.sleep(2)


def create(cloud, image_id, host, name):  # noqa: F811
    flavor = cloud.conn.compute.find_flavor(cloud.flavor)
    return cloud.conn.compute.create_server(
        name=NAME + name, image_id=image_id, flavor_id=flavor.id,
        networks='none', availability_zone='nova:%s' % host).id


def want(server_id, image):
    return {'image': image.name, 'uuid': server_id, 'sum': image.sum}


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def images(cloud, tmp_path_factory):  # noqa: F811
    """alpha raw and qcow2, beta raw, in Glance's default (rbd) store."""
    cache = os.environ.get('FASTCLONE_GUEST_CACHE') or str(
        tmp_path_factory.mktemp('guest'))
    raws = guest.build_images(cache, ['alpha', 'beta'])
    files = {'raw': (raws['alpha'], 'raw', 'alpha'),
             'qcow2': (raws['alpha'][:-4] + '.qcow2', 'qcow2', 'alpha'),
             'beta': (raws['beta'], 'raw', 'beta')}

    def upload(key):
        path, fmt, name = files[key]
        image = cloud.conn.image.create_image(
            name='%s%s-%s' % (NAME, name, key), filename=path,
            disk_format=fmt, container_format='bare', wait=True, timeout=600)
        return Image(image.id, name, guest.expected_sum(path), fmt)

    keys = ['raw', 'qcow2'] + ([] if SMOKE else ['beta'])
    # one at a time: the lab's Glance (sqlite) says "database is locked"
    # to concurrent uploads
    made = {'files': files}
    try:
        for key in keys:
            made[key] = upload(key)
        yield made
    finally:
        for key in keys:
            if key in made:
                cloud.conn.image.delete_image(made[key].id,
                                              ignore_missing=True)


@dataclasses.dataclass
class Fleet:
    boots: dict           # (host, image key) -> Boot
    extra: list           # ids of other servers the tests made
    images: list          # ids of images the tests made (snapshots)

    def server(self, host, key):
        return self.boots[(host, key)].server_id

    def all_servers(self):
        return [b.server_id for b in self.boots.values()] + self.extra


def _wait_fleet(cloud, boots, start):  # noqa: F811
    pending = dict(boots)
    deadline = start + BOOT_TIMEOUT
    while pending and time.monotonic() < deadline:
        for key, boot in list(pending.items()):
            server = cloud.conn.compute.get_server(boot.server_id)
            boot.status, boot.fault = server.status, server.fault
            if boot.status == 'ERROR':
                del pending[key]
                continue
            if boot.status == 'ACTIVE' and not boot.to_active:
                boot.to_active = time.monotonic() - start
            if boot.to_active:
                marker = guest.parse_marker(cloud.console(boot.server_id))
                if marker and marker.get('uuid') == boot.server_id:
                    boot.marker = marker
                    boot.to_marker = time.monotonic() - start
                    del pending[key]
        time.sleep(2)


@pytest.fixture(scope='module')
def fleet(cloud, images):  # noqa: F811
    """The fleet booted at once; deleted at the end (if a test did not)."""
    start = time.monotonic()
    boots = {}
    for host, key in FLEET:
        boots[(host, key)] = Boot(
            create(cloud, images[key].id, host, '%s-%s' % (host, key)),
            host, images[key])
    _wait_fleet(cloud, boots, start)
    cloudmod.note('fleet boot (%d servers at once; seconds from the first '
                  'create request)' % len(boots), '\n'.join(
                      '%-7s %-6s %-8s active %6.1f  marker %6.1f  %s' % (
                          b.host, b.image.disk_format, b.status, b.to_active,
                          b.to_marker, b.server_id)
                      for b in boots.values()))
    made = Fleet(boots, [], [])
    yield made
    for server_id in made.all_servers():
        cloud.conn.compute.delete_server(server_id, ignore_missing=True)
    for image_id in made.images:
        cloud.conn.image.delete_image(image_id, ignore_missing=True)
    for server_id in made.all_servers():
        cloud.wait_gone(server_id)


# ---------------------------------------------------------------- tests
@smoke
def test_tier_processes_services_hypervisors(cloud):  # noqa: F811
    """Three computes up, two of them fastrbd; the tier's processes."""
    assert [cloud.runs_fastrbd(h) for h in HOSTS] == [True, True, False]
    assert cloudmod.up_computes(cloud.conn) >= set(HOSTS)
    hypervisors = {h.name for h in cloud.conn.compute.hypervisors()}
    # and stockq (stock qcow2) where the tier was started --with-qcow2,
    # stock33 or stock31 (Nova 33 or 31) where it was started --mixed
    extra = set(cloudboot.STOCK_QCOW2_HOSTS + cloudboot.MIXED_HOSTS
                ) & hypervisors
    assert hypervisors == set(HOSTS) | extra, hypervisors
    openstack = os.path.join(cloud.env['FASTCLONE_LAB_CLOUD_VENV'], 'bin',
                             'openstack')
    env = dict(os.environ, **{k: v for k, v in cloud.env.items()
                              if k.startswith('OS_')})
    for title, args in [
            ('openstack compute service list', ['compute', 'service',
                                                'list']),
            ('openstack hypervisor list', ['hypervisor', 'list'])]:
        out = subprocess.run([openstack] + args, env=env, check=True,
                             capture_output=True, text=True).stdout
        cloudmod.note(title, out)
    ps = subprocess.run(['ps', '-ww', '-eo', 'pid,rss,args', '--sort', 'args'],
                        check=True, capture_output=True, text=True).stdout
    lab = cloud.lab_dir
    # the daemons tools/lab recorded, and what names the lab's directory
    status = subprocess.run([cloudmod.conftest.LAB, 'status', '--cloud'],
                            capture_output=True, text=True).stdout
    pids = set(re.findall(r'\(pid (\d+)\)', status))
    mine = [line[:220] for line in ps.splitlines()[1:]
            if (lab + '/' in line or line.split()[0] in pids)
            and 'ps -ww' not in line]
    for binary in ('nova-compute-fastrbd', 'nova-compute ', 'nova-conductor',
                   'nova-scheduler', 'mariadbd', 'beam.smp', 'libvirtd',
                   'virtlogd', 'keystone', 'placement', 'nova-api'):
        assert any(binary in line for line in mine), binary
    cloudmod.note('ps of the tier (processes naming %s)' % lab,
                  '\n'.join(mine))


@smoke
def test_boot_raw_and_qcow2_on_each_compute(cloud, images, fleet):  # noqa
    """Each server ACTIVE on the host asked for, its guest's marker.

    raw: a clone of Glance's snapshot (fastrbd and stock alike); qcow2:
    fastrbd clones its cached base in vms, stock Nova imports a flat copy.
    """
    env = cloud.env
    for (host, key), boot in fleet.boots.items():
        assert boot.status == 'ACTIVE', (host, key, boot.fault)
        server = cloud.conn.compute.get_server(boot.server_id)
        assert server.compute_host == host
        assert boot.marker is not None, (host, key, cloud.console(
            boot.server_id)[-2000:])
        assert {k: boot.marker[k] for k in ('image', 'uuid', 'sum')} == want(
            boot.server_id, images[key])
        parent = rbd_parent(env, env['FASTCLONE_VMS_POOL'],
                            '%s_disk' % boot.server_id)
        if key == 'raw':
            expected = (env['FASTCLONE_IMAGES_POOL'], images[key].id, 'snap')
        elif host in cloudmod.FASTRBD_HOSTS:
            expected = (env['FASTCLONE_VMS_POOL'],
                        naming.BASE_PREFIX + images[key].id, 'snap')
        else:
            expected = None
        assert parent == expected, (host, key, parent)


def test_hard_reboot(cloud, images, fleet):  # noqa: F811
    server_id = fleet.server('fast1', 'raw')
    server = cloud.wait_status(server_id, 'ACTIVE')
    before = domid(cloud, 'fast1', server.instance_name)
    cloud.conn.compute.reboot_server(server_id, 'HARD')
    cloud.wait_status(server_id, 'ACTIVE')
    wait_boot(cloud, server_id, want(server_id, images['raw']), before)


def test_rebuild_to_the_other_image(cloud, images, fleet):  # noqa: F811
    server_id = fleet.server('fast2', 'raw')
    server = cloud.wait_status(server_id, 'ACTIVE')
    before = domid(cloud, 'fast2', server.instance_name)
    cloud.conn.compute.rebuild_server(server_id, images['beta'].id)
    cloud.wait_status(server_id, 'ACTIVE')
    wait_boot(cloud, server_id, want(server_id, images['beta']), before)
    env = cloud.env
    assert rbd_parent(env, env['FASTCLONE_VMS_POOL'], '%s_disk' % server_id
                      ) == (env['FASTCLONE_IMAGES_POOL'], images['beta'].id,
                            'snap')


def test_snapshot_then_boot_from_it(cloud, images, fleet):  # noqa: F811
    """A snapshot of a raw-booted fastrbd server boots on the other host."""
    source = fleet.server('fast1', 'raw')
    cloud.wait_status(source, 'ACTIVE')
    snap = cloud.conn.compute.create_server_image(
        source, NAME + 'snapshot', wait=True, timeout=300)
    fleet.images.append(snap.id)
    server_id = create(cloud, snap.id, 'fast2', 'from-snapshot')
    fleet.extra.append(server_id)
    cloud.wait_status(server_id, 'ACTIVE', timeout=BOOT_TIMEOUT)
    # the snapshot holds alpha's disk: the same first 4 MiB
    wait_boot(cloud, server_id, want(server_id, images['raw']))


def test_snapshot_of_a_qcow2_booted_server(cloud, images, fleet):  # noqa
    """A snapshot of a server on a cached base boots on the other host.

    Its disk's parent is in the instances pool; the snapshot must still go
    to Glance's pool.
    """
    source = fleet.server('fast1', 'qcow2')
    cloud.wait_status(source, 'ACTIVE')
    snap = cloud.conn.compute.create_server_image(
        source, NAME + 'snapshot2', wait=True, timeout=300)
    fleet.images.append(snap.id)
    env = cloud.env
    assert snap.id in rbd_names(env)[env['FASTCLONE_IMAGES_POOL']]
    assert snap.id not in rbd_names(env)[env['FASTCLONE_VMS_POOL']]
    server_id = create(cloud, snap.id, 'fast2', 'from-snapshot2')
    fleet.extra.append(server_id)
    cloud.wait_status(server_id, 'ACTIVE', timeout=BOOT_TIMEOUT)
    wait_boot(cloud, server_id, want(server_id, images['qcow2']))


def test_raw_in_the_file_store_boots_from_a_cached_base(
        cloud, images, fleet):  # noqa: F811
    """alpha raw in Glance's file store boots on fast2 from a cached base.

    No RBD location to clone: fastrbd downloads it once into a cached base
    in the instances pool and clones that; the guest reads it through the
    clone.  The base stays for the lifecycle pass, as every base does.
    """
    path, fmt, name = images['files']['raw']
    image = cloud.conn.image.create_image(
        name='%s%s-file-store' % (NAME, name), disk_format=fmt,
        container_format='bare', allow_duplicates=True)
    try:
        store = cloud.env['FASTCLONE_GLANCE_FILE_STORE']
        with open(path, 'rb') as f:
            cloud.conn.image.put('/images/%s/file' % image.id, data=f,
                                 headers={'Content-Type':
                                          'application/octet-stream',
                                          'X-Image-Meta-Store': store})
        cloud.conn.image.wait_for_status(
            cloud.conn.image.get_image(image.id), 'active', wait=300)
        record = cloud.conn.image.get('/images/%s' % image.id).json()
        assert record['stores'] == store, record
        server_id = create(cloud, image.id, 'fast2', 'file-store')
        fleet.extra.append(server_id)
        cloud.wait_status(server_id, 'ACTIVE', timeout=BOOT_TIMEOUT)
        wait_boot(cloud, server_id, want(server_id, images['raw']))
        env = cloud.env
        assert rbd_parent(env, env['FASTCLONE_VMS_POOL'],
                          '%s_disk' % server_id) == (
            env['FASTCLONE_VMS_POOL'], naming.BASE_PREFIX + image.id, 'snap')
        assert glance_downloads(env, image.id) == 1
    finally:
        cloud.conn.image.delete_image(image.id, ignore_missing=True)


def test_shelve_offload_unshelve_on_the_other_host(
        cloud, images, fleet):  # noqa: F811
    """Shelved on stock1, offloaded, unshelved onto fast2 (a fastrbd host)."""
    server_id = fleet.server('stock1', 'raw')
    cloud.wait_status(server_id, 'ACTIVE')
    cloud.conn.compute.shelve_server(server_id)
    cloud.wait_status(server_id, 'SHELVED_OFFLOADED', timeout=600)
    assert domid(cloud, 'stock1', cloud.conn.compute.get_server(
        server_id).instance_name) is None
    cloud.conn.compute.unshelve_server(server_id, host='fast2')
    server = cloud.wait_status(server_id, 'ACTIVE', timeout=BOOT_TIMEOUT)
    assert server.compute_host == 'fast2'
    wait_boot(cloud, server_id, want(server_id, images['raw']))


def test_rescue_and_unrescue(cloud, images, fleet):  # noqa: F811
    server_id = fleet.server('fast1', 'raw')
    server = cloud.wait_status(server_id, 'ACTIVE')
    before = domid(cloud, 'fast1', server.instance_name)
    cloud.conn.compute.rescue_server(server_id)
    cloud.wait_status(server_id, 'RESCUE', timeout=BOOT_TIMEOUT)
    # the rescue disk (the image again) is the one booted: the same marker
    wait_boot(cloud, server_id, want(server_id, images['raw']), before)
    rescued = domid(cloud, 'fast1', server.instance_name)
    assert '%s_disk.rescue' % server_id in rbd_names(cloud.env)[
        cloud.env['FASTCLONE_VMS_POOL']]
    cloud.conn.compute.unrescue_server(server_id)
    cloud.wait_status(server_id, 'ACTIVE', timeout=BOOT_TIMEOUT)
    wait_boot(cloud, server_id, want(server_id, images['raw']), rescued)
    assert '%s_disk.rescue' % server_id not in rbd_names(cloud.env)[
        cloud.env['FASTCLONE_VMS_POOL']]


def _compute_starts(cloud, host):  # noqa: F811
    return cloud.compute_log(host).count(cloudmod.ACTIVE_LINE)


def test_compute_restart_keeps_guests(cloud, images, fleet):  # noqa: F811
    """fast1's nova-compute-fastrbd restarted while its guests run.

    The same QEMUs keep running (the same domain ids), their markers stay;
    the next boot on fast1 works.
    """
    guests = running_domains(cloud, 'fast1')
    assert guests
    starts = _compute_starts(cloud, 'fast1')
    pid = cloud.lab('pid', 'nova-compute.fast1').strip()
    os.kill(int(pid), 15)
    deadline = time.monotonic() + 60
    while os.path.exists('/proc/%s' % pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not os.path.exists('/proc/%s' % pid), 'compute did not stop'
    assert running_domains(cloud, 'fast1') == guests
    cloud.lab('up', '--cloud')     # starts what is not running: fast1
    deadline = time.monotonic() + 300
    while _compute_starts(cloud, 'fast1') == starts:
        assert time.monotonic() < deadline, 'fast1 did not start again'
        time.sleep(1)
    assert cloud.lab('pid', 'nova-compute.fast1').strip() != pid
    assert running_domains(cloud, 'fast1') == guests
    for server_id in fleet.all_servers():
        server = cloud.conn.compute.get_server(server_id)
        if server.compute_host == 'fast1' and server.status == 'ACTIVE':
            marker = guest.parse_marker(cloud.console(server_id))
            assert marker and marker['uuid'] == server_id, server_id
    assert 'fast1' in cloudmod.wait_computes(cloud.conn)
    server_id = create(cloud, images['raw'].id, 'fast1', 'after-restart')
    fleet.extra.append(server_id)
    cloud.wait_status(server_id, 'ACTIVE', timeout=BOOT_TIMEOUT)
    wait_boot(cloud, server_id, want(server_id, images['raw']))
    assert running_domains(cloud, 'fast1').items() >= guests.items()


@pytest.fixture(scope='module')
def hostile(cloud, images, tmp_path_factory):  # noqa: F811
    """alpha's qcow2 bytes behind a raw-declared image (a legacy image)."""
    qcow2 = images['files']['qcow2'][0]
    placeholder = str(tmp_path_factory.mktemp('hostile') / 'placeholder')
    with open(placeholder, 'wb') as f:
        f.truncate(os.path.getsize(qcow2))
    image = cloud.conn.image.create_image(
        name=NAME + 'hostile', filename=placeholder, disk_format='raw',
        container_format='bare', wait=True, timeout=600)
    plant(cloud.env, image.id, qcow2)
    yield image
    cloud.conn.image.delete_image(image.id, ignore_missing=True)


@smoke
def test_raw_declared_qcow2(cloud, hostile, fleet):  # noqa: F811
    """A raw-declared qcow2: stock1 boots nothing, fast1 refuses it.

    stock1 hands the qcow2 bytes to the guest as a raw disk: "No bootable
    device" on its console.  fast1 refuses the build: ERROR, the fault names
    the image and why, one Glance download at most, nothing in Ceph.
    """
    stock = create(cloud, hostile.id, 'stock1', 'hostile-stock1')
    fleet.extra.append(stock)
    fast = create(cloud, hostile.id, 'fast1', 'hostile-fast1')
    fleet.extra.append(fast)

    refused = cloud.wait_error(fast, timeout=BOOT_TIMEOUT)
    fault = refused.fault or {}
    cloudmod.note('fast1: the fault of the hostile image\'s server', '%s\n%s'
                  % (fault.get('message'), (fault.get('details') or '')[
                      -1500:]))
    text = '%s %s' % (fault.get('message'), fault.get('details'))
    assert hostile.id in text, fault
    assert 'qcow2' in text and 'raw' in text, fault
    assert not leftovers(cloud.env, [fast]), leftovers(cloud.env, [fast])

    cloud.wait_status(stock, 'ACTIVE', timeout=BOOT_TIMEOUT)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not guest.no_boot(cloud.console(stock)):
        assert time.monotonic() < deadline, cloud.console(stock)[-2000:]
        time.sleep(2)
    line = [x for x in cloud.console(stock).splitlines()
            if guest.NO_BOOT in x]
    cloudmod.note('stock1: the hostile image\'s console line',
                  line[0].strip())
    assert glance_downloads(cloud.env, hostile.id) <= 1


@smoke
def test_delete_leaves_nothing(cloud, fleet):  # noqa: F811
    """Every server deleted: nothing of them left in Ceph.

    Nothing naming one in either pool, nor in either pool's trash; the
    snapshots deleted from Glance go too.
    """
    servers = fleet.all_servers()
    assert servers
    for server_id in servers:
        cloud.conn.compute.delete_server(server_id, ignore_missing=True)
    for server_id in servers:
        cloud.wait_gone(server_id)
    for image_id in fleet.images:
        cloud.conn.image.delete_image(image_id, ignore_missing=True)
    assert leftovers(cloud.env, servers + fleet.images) == {}
