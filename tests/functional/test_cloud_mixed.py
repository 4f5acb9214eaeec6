"""A fleet of two Nova releases sharing disks and bases: evacuate, migrate.

On the lab's cloud tier started with ``--mixed [NN]`` (tests/functional/
cloud.py, tools/lab.d/cloud.sh): ``fast1`` runs nova-compute-fastrbd of Nova
34 (the tier's control services' release), ``stockNN`` stock nova-compute of
Nova NN from its own venv (``images_type = rbd``), both on the one vms pool.
NN is ``FASTCLONE_LAB_CLOUD_MIXED_RELEASE`` (``tools/lab env`` prints the
running tier's), 33 where it is unset; 31 is outside Nova 34's support
window (the tier sets Nova's fast-forward-upgrade workaround on its Nova 34
services for it).  The ``mixed`` fixture starts stockNN (``tools/lab up
--cloud --mixed NN``) where the tier runs without it.

Evacuate: the source's nova-compute stopped, its guest destroyed (the host
died), the service forced down (``openstack compute service set --down``),
the server evacuated to the other release's host: ACTIVE there, its guest's
marker on the console, its disk the same RBD image (the same id, the same
parent: the cached base of a qcow2 image, Glance's snapshot of a raw one).
The source's nova-compute started again must leave that disk alone.

Live migration: fast1 -> stockNN and back, through each libvirtd's socket
(``[libvirt] live_migration_uri`` names the destination's lab host) and
QEMU's stream on 127.0.0.1 (``live_migration_inbound_addr``).

The last test deletes every server and looks for anything left in Ceph.
"""

import os
import subprocess
import time

from openstack import exceptions
import pytest

from fastclone_backend.cache import naming
from fastclone_lab import cloudboot
from tests.functional import cloud as cloudmod
from tests.functional.cloud import cloud  # noqa: F401 (fixture)
from tests.functional import test_cloud as tc
from tests.functional.test_cloud import images  # noqa: F401 (fixture)

pytestmark = pytest.mark.cloud

FAST = 'fast1'                      # nova-compute-fastrbd, Nova 34
RELEASE = os.environ.get('FASTCLONE_LAB_CLOUD_MIXED_RELEASE', '33')
OLD = 'stock%s' % RELEASE           # stock nova-compute, Nova RELEASE
OLD_VENV = 'venv-nova%s' % RELEASE
# from 2.95 an evacuated server stays stopped on its new host
EVACUATE_MICROVERSION = '2.94'
UP_TIMEOUT = 300


# ---------------------------------------------------------------- helpers
def rbd_id(env, name):
    """The RBD image's id (a new image gets a new one), None if absent."""
    import rbd
    client = tc._admin_rados(env)
    try:
        with client.open_ioctx(env['FASTCLONE_VMS_POOL']) as ioctx:
            try:
                with rbd.Image(ioctx, name, read_only=True) as img:
                    return img.id()
            except rbd.ImageNotFound:
                return None
    finally:
        client.shutdown()


def disk_facts(env, server_id):
    """(id, parent) of the server's root disk in the vms pool."""
    name = '%s_disk' % server_id
    return rbd_id(env, name), tc.rbd_parent(env, env['FASTCLONE_VMS_POOL'],
                                            name)


def compute_pid(cloud, host):  # noqa: F811
    return cloud.lab('pid', 'nova-compute.%s' % host).strip()


def service(cloud, host):  # noqa: F811
    return next(iter(cloud.conn.compute.services(binary='nova-compute',
                                                 host=host)))


def wait_service(cloud, host, state, timeout=UP_TIMEOUT):  # noqa: F811
    deadline = time.monotonic() + timeout
    while service(cloud, host).state != state:
        assert time.monotonic() < deadline, '%s not %s' % (host, state)
        time.sleep(2)


def stop_compute(cloud, host):  # noqa: F811
    pid = compute_pid(cloud, host)
    os.kill(int(pid), 15)
    deadline = time.monotonic() + 60
    while os.path.exists('/proc/%s' % pid):
        assert time.monotonic() < deadline, '%s did not stop' % host
        time.sleep(0.5)


def forced(host):
    """Whether the test forces the dead host's service down.

    Not stockNN: a forced-down service is left out of Nova's minimum
    version, so with the fleet's only older compute forced down the
    minimum is 34's and Nova 34's API refuses to force it up again (500,
    ServiceTooOld on the service record's save): it goes down the slow way,
    its heartbeat late ([DEFAULT] service_down_time, 60 s).
    """
    return host != OLD


def host_died(cloud, host, server_id):  # noqa: F811
    """Its nova-compute stopped, its guest gone, the service down."""
    instance = cloud.conn.compute.get_server(server_id).instance_name
    stop_compute(cloud, host)
    cloud.libvirt(host).virsh('destroy', instance)
    if forced(host):
        cloud.conn.compute.update_service_forced_down(service(cloud, host),
                                                      forced=True)
    wait_service(cloud, host, 'down')


def host_back(cloud, host):  # noqa: F811
    """Its nova-compute started again (what is down), forced down no more.

    Nova refuses to force a host up while its evacuations are 'done' and
    not yet 'completed' (the source's nova-compute completes them when it
    starts): the request is repeated until it is taken.
    """
    cloud.lab('up', '--cloud')
    deadline = time.monotonic() + UP_TIMEOUT
    while forced(host):
        try:
            cloud.conn.compute.update_service_forced_down(
                service(cloud, host), forced=False)
            break
        except exceptions.BadRequestException:
            assert time.monotonic() < deadline, '%s stays forced down' % host
            time.sleep(2)
    wait_service(cloud, host, 'up')


def evacuate(cloud, server_id, host):  # noqa: F811
    response = cloud.conn.compute.post(
        '/servers/%s/action' % server_id, json={'evacuate': {'host': host}},
        microversion=EVACUATE_MICROVERSION)
    assert response.status_code == 200, response.text


def wait_evacuated(cloud, server_id):  # noqa: F811
    """The server once its evacuation's record is no longer in progress.

    The destination saves the server ACTIVE, then moves it to its own host
    and marks the migration 'done' (Nova's finish_evacuation, under the
    resource tracker's lock): ACTIVE alone still names the source's host
    for a while (seen for seconds on a loaded Nova 31 destination).
    """
    deadline = time.monotonic() + tc.BOOT_TIMEOUT
    while True:
        migration = max(cloud.conn.compute.migrations(
            server_id=server_id, migration_type='evacuation'),
            key=lambda m: m.created_at)
        if migration.status in ('done', 'completed', 'failed', 'error'):
            return cloud.conn.compute.get_server(server_id), migration
        assert time.monotonic() < deadline, migration.status
        time.sleep(1)


def boot(cloud, made, image, host, name):  # noqa: F811
    server_id = tc.create(cloud, image.id, host, name)
    made.append(server_id)
    cloud.wait_status(server_id, 'ACTIVE', timeout=tc.BOOT_TIMEOUT)
    tc.wait_boot(cloud, server_id, tc.want(server_id, image))
    return server_id


def live_migrate(cloud, server_id, host):  # noqa: F811
    """Live-migrate to host; returns the seconds and the migration."""
    start = time.monotonic()
    cloud.conn.compute.live_migrate_server(server_id, host=host,
                                           block_migration=False)
    deadline = start + tc.BOOT_TIMEOUT
    # the server is ACTIVE on its new host before the migration's record
    # is 'completed' (the source's post-migration steps)
    while True:
        server = cloud.conn.compute.get_server(server_id)
        migration = max(cloud.conn.compute.migrations(
            server_id=server_id, migration_type='live-migration'),
            key=lambda m: m.created_at)
        if (server.task_state is None and server.status != 'MIGRATING'
                and migration.status in ('completed', 'error', 'failed')):
            break
        assert time.monotonic() < deadline, (server.status,
                                             migration.status)
        time.sleep(1)
    return time.monotonic() - start, server, migration


def expected_parent(env, image, key):
    if key == 'raw':
        return (env['FASTCLONE_IMAGES_POOL'], image.id, 'snap')
    return (env['FASTCLONE_VMS_POOL'], naming.BASE_PREFIX + image.id, 'snap')


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def mixed(cloud):  # noqa: F811
    """stockNN up (started here where the tier runs without it)."""
    assert OLD in cloudboot.MIXED_HOSTS, OLD
    if OLD not in cloudmod.up_computes(cloud.conn):
        cloud.lab('up', '--cloud', '--mixed', RELEASE)
    wait_service(cloud, OLD, 'up')
    with open('/proc/%s/cmdline' % compute_pid(cloud, OLD)) as f:
        assert OLD_VENV in f.read()
    return cloud


@pytest.fixture(scope='module')
def made(mixed):
    """Ids of the servers the tests made; deleted at the end."""
    servers = []
    yield servers
    for server_id in servers:
        mixed.conn.compute.delete_server(server_id, ignore_missing=True)
    for server_id in servers:
        mixed.wait_gone(server_id)


# ---------------------------------------------------------------- tests
def test_old_compute_runs_its_release(mixed):
    """stockNN registered, stock rbd (no fastrbd line), Nova NN's venv."""
    venv_python = os.path.join(mixed.lab_dir, OLD_VENV, 'bin', 'python')
    version = subprocess.run(
        [venv_python, '-c',
         'from importlib.metadata import version; print(version("nova"))'],
        capture_output=True, text=True, check=True).stdout.strip()
    cloudmod.note('%s runs Nova' % OLD, version)
    assert version.split('.')[0] == RELEASE
    assert not mixed.runs_fastrbd(OLD)
    assert mixed.runs_fastrbd(FAST)
    hypervisors = {h.name for h in mixed.conn.compute.hypervisors()}
    assert {FAST, OLD} <= hypervisors


@pytest.mark.parametrize('source,dest,key', [
    (FAST, OLD, 'qcow2'),       # fastrbd (34) -> stock rbd (NN)
    (OLD, FAST, 'raw'),         # stock rbd (NN) -> fastrbd (34)
])
def test_evacuate(mixed, images, made, source, dest, key):  # noqa: F811
    env = mixed.env
    image = images[key]
    server_id = boot(mixed, made, image, source,
                     'evacuate-%s-%s' % (source, key))
    before = disk_facts(env, server_id)
    assert before[0] and before[1] == expected_parent(env, image, key)
    host_died(mixed, source, server_id)
    try:
        start = time.monotonic()
        evacuate(mixed, server_id, dest)
        mixed.wait_status(server_id, 'ACTIVE', timeout=tc.BOOT_TIMEOUT)
        server, migration = wait_evacuated(mixed, server_id)
        assert (server.compute_host, server.status, migration.status) == (
            dest, 'ACTIVE', 'done'), server.fault
        _marker, seconds = tc.wait_boot(mixed, server_id,
                                        tc.want(server_id, image))
        cloudmod.note('evacuate %s %s -> %s' % (key, source, dest),
                      'ACTIVE with its marker %.1f s after the request' % (
                          time.monotonic() - start))
        assert disk_facts(env, server_id) == before
    finally:
        host_back(mixed, source)
    # the source's compute back: it cleans its side, not the shared disk
    assert disk_facts(env, server_id) == before
    instance = mixed.conn.compute.get_server(server_id).instance_name
    assert instance not in tc.running_domains(mixed, source)
    assert instance in tc.running_domains(mixed, dest)


def test_live_migration_there_and_back(mixed, images, made):  # noqa: F811
    env = mixed.env
    image = images['qcow2']
    server_id = boot(mixed, made, image, FAST, 'live-migration')
    before = disk_facts(env, server_id)
    instance = mixed.conn.compute.get_server(server_id).instance_name
    for source, dest in ((FAST, OLD), (OLD, FAST)):
        seconds, server, migration = live_migrate(mixed, server_id, dest)
        cloudmod.note('live migration %s -> %s' % (source, dest),
                      '%s in %.1f s' % (migration.status, seconds))
        assert (server.compute_host, server.status, migration.status) == (
            dest, 'ACTIVE', 'completed'), (migration.status, server.fault)
        assert instance in tc.running_domains(mixed, dest)
        assert instance not in tc.running_domains(mixed, source)
        assert disk_facts(env, server_id) == before
    # the console file Nova reads after the round trip holds no earlier
    # output: a hard reboot on fast1 proves the disk boots there
    before_reboot = tc.domid(mixed, FAST, instance)
    mixed.conn.compute.reboot_server(server_id, 'HARD')
    mixed.wait_status(server_id, 'ACTIVE', timeout=tc.BOOT_TIMEOUT)
    tc.wait_boot(mixed, server_id, tc.want(server_id, image), before_reboot)


def test_delete_leaves_nothing(mixed, made):
    assert made
    for server_id in made:
        mixed.conn.compute.delete_server(server_id, ignore_missing=True)
    for server_id in made:
        mixed.wait_gone(server_id)
    assert tc.leftovers(mixed.env, made) == {}
