"""The lab guest's console marker, its expected sum, its checksummed region.

The console texts are cut from real serial logs of the lab guest (QEMU 7.2,
TCG, Debian's 6.1 cloud kernel): lines end with \\r\\n there.
"""

import hashlib
import os

import pytest

from fastclone_lab import guest

SUM_A = 'b55cd7b61e6718622c2c56dbe38667846b3fe52d0d4b82700d77baa3f524b9df'
SUM_B = '122852aa865d049ad0a17838b514002737e25cec1ae28285c2438c58899e89f5'
UUID = 'a5536358-196b-4a67-85b4-3b5dbcf8527b'

BOOT_A = (
    '[    1.803410] Run /init as init process\r\n'
    '[    2.187554] virtio_blk virtio0: 1/0/0 default/read/poll queues\r\n'
    '[    2.205841] virtio_blk virtio0: [vda] 131072 512-byte logical blocks'
    ' (67.1 MB/64.0 MiB)\r\n'
    '[    2.219748]  vda: vda1\r\n'
    '[    2.366304] ata2: PATA max MWDMA2 cmd 0x170 ctl 0x376 bmdma 0xc0c8'
    ' irq 15\r\n'
    'FASTCLONE-GUEST image=alpha uuid=%s sum=%s disk=vda uptime=3.08\r\n'
    % (UUID, SUM_A))

BOOT_B = (
    '\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H'
    'SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n'
    'Booting from Hard Disk...\r\n'
    '[    0.000000] Command line: BOOT_IMAGE=/vmlinuz console=ttyS0'
    ' fastclone.image=beta initrd=/initrd.gz\r\n'
    'FASTCLONE-GUEST image=beta uuid=%s sum=%s disk=sda uptime=3.51\r\n'
    % (UUID, SUM_B))

NO_BOOT = ('SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n'
           'Booting from Hard Disk...\r\n'
           'Boot failed: not a bootable disk\r\n\r\n'
           'No bootable device.  Retrying in 60 seconds.\r\n')


def test_marker_of_a_real_boot():
    assert guest.parse_marker(BOOT_A) == {
        'image': 'alpha', 'uuid': UUID, 'sum': SUM_A, 'disk': 'vda',
        'uptime': '3.08'}


def test_marker_with_plain_newlines():
    text = BOOT_A.replace('\r\n', '\n')
    assert guest.parse_marker(text)['sum'] == SUM_A


def test_kernel_command_line_is_not_a_marker():
    # the command line names the image too, but it is no marker
    text = BOOT_B.split('FASTCLONE-GUEST')[0]
    assert 'fastclone.image=beta' in text
    assert guest.parse_marker(text) is None
    assert guest.parse_markers(text) == []


def test_last_boot_wins_in_an_appended_log():
    # virtlogd appends: a rebuild to beta leaves alpha's boot before it
    text = BOOT_A + BOOT_B
    markers = guest.parse_markers(text)
    assert [m['image'] for m in markers] == ['alpha', 'beta']
    assert guest.parse_marker(text)['image'] == 'beta'
    assert guest.parse_marker(text)['sum'] == SUM_B
    assert guest.parse_marker(text)['disk'] == 'sda'


def test_line_still_being_written_is_not_a_marker():
    # the console file read while the guest writes its marker
    cut = BOOT_A[:BOOT_A.index('disk=vda')]
    assert guest.parse_marker(cut) is None
    whole_but_eol = BOOT_A.rstrip('\r\n')
    assert guest.parse_marker(whole_but_eol) is None
    assert guest.parse_marker(whole_but_eol + '\r\n')['uptime'] == '3.08'


def test_marker_without_sum_is_not_a_marker():
    text = 'FASTCLONE-GUEST image=alpha uuid=%s disk=vda\r\n' % UUID
    assert guest.parse_marker(text) is None


def test_interrupted_marker_is_not_a_marker():
    # a kernel line written into the middle of the marker breaks it
    text = ('FASTCLONE-GUEST image=alpha uuid=%s [    2.539921] ata2: found'
            ' unknown device (class 0)\r\nsum=%s disk=vda uptime=3.08\r\n'
            % (UUID, SUM_A))
    assert guest.parse_marker(text) is None


def test_guest_without_disk_or_uuid_reports_none():
    text = 'FASTCLONE-GUEST image=alpha uuid=none sum=none disk=none' \
           ' uptime=12.40\r\n'
    assert guest.parse_marker(text) == {
        'image': 'alpha', 'uuid': 'none', 'sum': 'none', 'disk': 'none',
        'uptime': '12.40'}


def test_no_bootable_device():
    assert guest.no_boot(NO_BOOT)
    assert guest.parse_marker(NO_BOOT) is None
    assert not guest.no_boot(BOOT_A)


def test_expected_sum_from_raw_qcow2_or_sum_path(tmp_path):
    raw = tmp_path / 'alpha.raw'
    (tmp_path / 'alpha.raw.sum').write_text(SUM_A + '\n')
    assert guest.expected_sum(str(raw)) == SUM_A
    assert guest.expected_sum(str(tmp_path / 'alpha.qcow2')) == SUM_A
    assert guest.expected_sum(str(tmp_path / 'alpha.raw.sum')) == SUM_A


def test_expected_sum_refuses_what_is_no_sha256(tmp_path):
    (tmp_path / 'beta.raw.sum').write_text(SUM_B[:40] + '\n')
    with pytest.raises(ValueError):
        guest.expected_sum(str(tmp_path / 'beta.raw'))


def test_region_sum_is_the_first_four_mib(tmp_path):
    path = tmp_path / 'disk.raw'
    head = os.urandom(guest.REGION_BYTES)
    path.write_bytes(head + b'tail beyond the region')
    assert guest.region_sum(str(path)) == hashlib.sha256(head).hexdigest()
    # a disk grown past the region (1 GiB flavor) keeps its sum
    with open(path, 'r+b') as f:
        f.truncate(16 << 20)
    assert guest.region_sum(str(path)) == hashlib.sha256(head).hexdigest()
