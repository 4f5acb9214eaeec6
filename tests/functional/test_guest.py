"""The lab guest boots, and reports what it booted from.

By plain QEMU from the local raw file (the boot benchmark's lower limit),
and by a lab compute host's libvirtd (tools/lab.d/libvirt-host) from an
RBD clone of the image in Glance's store, grown to a 1 GiB root disk,
with cephx through a libvirt secret: what Nova's domains will do.
"""

import os
import re
import subprocess
import uuid

import pytest
import rbd

from fastclone_lab import guest
from fastclone_lab import libvirthost

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
GiB = 1 << 30


@pytest.fixture(scope='session')
def guest_images():
    """alpha and beta, cached in the lab dir (built once: about 10 s)."""
    lab_dir = os.environ.get('FASTCLONE_LAB_DIR', os.path.join(REPO, '.lab'))
    return guest.build_images(os.path.join(lab_dir, 'guest-images'))


def test_images_differ_and_carry_their_sums(guest_images):
    sums = {n: guest.expected_sum(p) for n, p in guest_images.items()}
    assert sums['alpha'] != sums['beta']
    for name, path in guest_images.items():
        assert guest.region_sum(path) == sums[name]
        assert os.path.getsize(path) == 64 << 20


def test_plain_qemu_boots_raw_to_marker(guest_images):
    instance = str(uuid.uuid4())
    boot = guest.boot_plain(guest_images['beta'], uuid=instance.upper(),
                            timeout=120)
    assert boot.marker is not None, boot.console[-2000:]
    assert boot.marker['image'] == 'beta'
    assert boot.marker['uuid'] == instance
    assert boot.marker['sum'] == guest.expected_sum(guest_images['beta'])
    assert boot.marker['disk'] == 'vda'


def test_qcow2_declared_raw_does_not_boot(guest_images):
    qcow2 = guest_images['alpha'][:-len('.raw')] + '.qcow2'
    boot = guest.boot_plain(qcow2, fmt='raw', timeout=120)
    assert boot.no_boot, boot.console[-2000:]
    assert boot.marker is None


def _mon_v1(ceph_conf):
    with open(ceph_conf) as f:
        m = re.search(r'v1:([0-9.]+):([0-9]+)', f.read())
    assert m, 'no v1 mon address in %s' % ceph_conf
    return m.group(1), int(m.group(2))


def _nova_key(lab):
    return subprocess.run(
        ['ceph', '-c', lab.ceph_conf, '--id', lab.admin_user, 'auth',
         'get-key', 'client.%s' % lab.nova_user], check=True,
        capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.fixture
def two_hosts(tmp_path_factory):
    base = str(tmp_path_factory.mktemp('lv'))
    hosts = [libvirthost.LibvirtHost(n, base) for n in ('h1', 'h2')]
    try:
        for host in hosts:
            host.up()
        yield hosts
    finally:
        for host in hosts:
            host.down()


@pytest.fixture
def alpha_clone(lab, images, guest_images, rados_nova, vms):
    """alpha in Glance's RBD store, cloned into vms and grown to 1 GiB."""
    image = images.upload(guest_images['alpha'], store=lab.rbd_store)
    src = rados_nova.open_ioctx(lab.images_pool)
    name = 'fastclone-guest-test-%s_disk' % uuid.uuid4().hex[:8]
    rbd.RBD().clone(src, image.id, 'snap', vms, name)
    try:
        with rbd.Image(vms, name) as img:
            img.resize(GiB)
        yield '%s/%s' % (lab.vms_pool, name)
    finally:
        rbd.RBD().remove(vms, name)
        src.close()


def test_running_host_learns_a_peer_added_later(two_hosts):
    """A compute added to a running tier resolves in the running hosts.

    stock33, added by the mixed tests' fixture: a live migration to it
    names it in the URI QEMU's stream goes to.
    """
    h1, _ = two_hosts
    assert h1.resolve('h1') == '127.0.0.1'
    assert h1.resolve('fc-peer-added-later') == ''
    pid_file = os.path.join(h1.base, h1.name, 'libvirtd.pid')
    with open(pid_file) as f:
        libvirtd = f.read().strip()

    h1.up(peers=('h2', 'fc-peer-added-later'))

    assert h1.resolve('fc-peer-added-later') == '127.0.0.1'
    assert h1.resolve('h2') == '127.0.0.1'
    with open(pid_file) as f:
        assert f.read().strip() == libvirtd, 'libvirtd was restarted'
    assert h1.virsh('hostname').strip() == 'h1'


# alpha_clone before two_hosts: the hosts (and the domain) go first
def test_host_boots_rbd_clone_and_sees_only_its_domains(
        lab, alpha_clone, two_hosts, guest_images, tmp_path):
    h1, h2 = two_hosts
    assert h1.virsh('hostname').strip() == 'h1'
    assert h2.virsh('hostname').strip() == 'h2'
    secret = str(uuid.uuid4())
    h1.secret(secret, _nova_key(lab))
    mon, port = _mon_v1(lab.ceph_conf)
    instance = str(uuid.uuid4())
    console = str(tmp_path / 'console.log')
    xml = tmp_path / 'domain.xml'
    xml.write_text(libvirthost.rbd_domain_xml(
        'fc-guest-test', instance, alpha_clone, secret, mon, port, console,
        rbd_user=lab.nova_user))

    h1.virsh('create', str(xml))
    marker, _ = guest.wait_marker(console, timeout=180)

    assert marker is not None, guest.read_console(console)[-2000:]
    assert marker['image'] == 'alpha'
    assert marker['uuid'] == instance
    assert marker['sum'] == guest.expected_sum(guest_images['alpha'])
    assert marker['disk'] == 'vda'
    assert h1.virsh('list', '--name').split() == ['fc-guest-test']
    assert h2.virsh('list', '--all', '--name').split() == []
