"""Image inspection against real files that qemu-img and small writers build.

Every image is made at test time in a tmp dir: no binary fixture.  Each
rejection is checked for its reason and for the image id in the message.
"""

import json
import os
import pathlib
import random
import shutil
import struct
import subprocess
import uuid
import zlib

from oslo_concurrency import processutils
import pytest

from fastclone_backend import exception
from fastclone_backend import inspect

# qemu-img is a requirement (tools/install-deps): without it, fail loudly
assert shutil.which('qemu-img'), 'qemu-img is not installed (qemu-utils)'

IMAGE_ID = '7d1f3c2a-9b8e-4f6d-a5c4-3b2a19087f6e'
MiB = 1 << 20
SECTOR = 512
ISO_BLOCK = 2048
ISO_BLOCKS = 32
GPT_HEADER = struct.Struct('<8sIIIIQQQQ16sQIII')
GPT_ENTRIES = 128
GPT_ENTRY_SIZE = 128


# Writers: each returns the path of the image it made under tmp.

def qemu_img(*args: str) -> None:
    subprocess.run(('qemu-img',) + args, check=True, capture_output=True)


def write(path: pathlib.Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def patch(path: str, offset: int, data: bytes) -> str:
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)
    return path


def random_raw(tmp: pathlib.Path, size: int = MiB) -> str:
    return write(tmp / 'random.raw', random.Random(size).randbytes(size))


def qcow2_with_data(tmp: pathlib.Path, size: int = 4 * MiB) -> str:
    """A qcow2 whose clusters are all allocated with random data."""
    path = str(tmp / 'data.qcow2')
    qemu_img('convert', '-f', 'raw', '-O', 'qcow2', random_raw(tmp, size),
             path)
    return path


def created(tmp: pathlib.Path, fmt: str, name: str, *opts: str) -> str:
    path = str(tmp / name)
    qemu_img('create', '-f', fmt, *opts, path, '1M')
    return path


def compressed_qcow2(tmp: pathlib.Path) -> str:
    """Compressed clusters: the file ends inside its last cluster."""
    rng = random.Random(3)
    raw = write(tmp / 'text.raw', bytes(rng.choice(b'ab') for _ in range(MiB)))
    path = str(tmp / 'compressed.qcow2')
    qemu_img('convert', '-c', '-f', 'raw', '-O', 'qcow2', raw, path)
    return path


def leaky_qcow2(tmp: pathlib.Path) -> str:
    """Append a cluster nothing uses and give it a refcount of 1."""
    path = qcow2_with_data(tmp)
    with open(path, 'r+b') as f:
        header = f.read(64)
        cluster_size = 1 << struct.unpack('>I', header[20:24])[0]
        f.seek(struct.unpack('>Q', header[48:56])[0])
        refcount_block = struct.unpack('>Q', f.read(8))[0]
        leaked = f.seek(0, 2) // cluster_size
        f.write(bytes(cluster_size))
        f.seek(refcount_block + 2 * leaked)
        f.write(struct.pack('>H', 1))
    return path


def truncated_qcow2(tmp: pathlib.Path) -> str:
    """Cut a qcow2 in the middle of its data clusters."""
    path = qcow2_with_data(tmp)
    with open(path, 'r+b') as f:
        f.truncate(f.seek(0, 2) // 2)
    return path


def qcow2_with_backing_file(tmp: pathlib.Path) -> str:
    base = created(tmp, 'qcow2', 'base.qcow2')
    path = str(tmp / 'backed.qcow2')
    qemu_img('create', '-f', 'qcow2', '-b', base, '-F', 'qcow2', path)
    return path


def qcow2_with_data_file(tmp: pathlib.Path) -> str:
    return created(tmp, 'qcow2', 'datafile.qcow2',
                   '-o', 'data_file=%s' % (tmp / 'external.raw'))


def qcow2_with_unknown_feature(tmp: pathlib.Path) -> str:
    # incompatible_features is a big-endian u64 at 72: set bit 5.
    return patch(created(tmp, 'qcow2', 'feature.qcow2'), 79, b'\x20')


def qcow2_bad_cluster_size(tmp: pathlib.Path) -> str:
    # cluster_bits (u32 at 20) = 40: the inspector does not look, qemu does.
    return patch(created(tmp, 'qcow2', 'bits.qcow2'), 20,
                 struct.pack('>I', 40))


def qcow2_head(tmp: pathlib.Path) -> str:
    with open(qcow2_with_data(tmp), 'rb') as f:
        return write(tmp / 'head.qcow2', f.read(100))


def vmdk(subformat: str):
    def build(tmp: pathlib.Path) -> str:
        return created(tmp, 'vmdk', subformat + '.vmdk',
                       '-o', 'subformat=' + subformat)
    return build


def stream_optimized_vmdk(tmp: pathlib.Path) -> str:
    path = str(tmp / 'stream.vmdk')
    qemu_img('convert', '-f', 'raw', '-O', 'vmdk', '-o',
             'subformat=streamOptimized', random_raw(tmp), path)
    return path


def split_vmdk_extent(tmp: pathlib.Path) -> str:
    """The first extent of a twoGbMaxExtentSparse vmdk, on its own."""
    vmdk('twoGbMaxExtentSparse')(tmp)
    return str(tmp / 'twoGbMaxExtentSparse-s001.vmdk')


def vmdk_descriptor_to_flat(tmp: pathlib.Path) -> str:
    """A hand-written descriptor claiming an allowed create-type."""
    write(tmp / 'victim', bytes(MiB))
    return write(tmp / 'descriptor.vmdk', (
        b'# Disk DescriptorFile\nversion=1\nCID=fffffffe\n'
        b'parentCID=ffffffff\ncreateType="streamOptimized"\n\n'
        b'RW 2048 FLAT "victim" 0\n'))


def iso(tmp: pathlib.Path) -> str:
    """An ISO 9660 primary volume descriptor and its terminator."""
    data = bytearray(ISO_BLOCKS * ISO_BLOCK)
    pvd = 16 * ISO_BLOCK
    data[pvd:pvd + 7] = b'\x01CD001\x01'
    data[pvd + 80:pvd + 88] = (struct.pack('<I', ISO_BLOCKS)
                               + struct.pack('>I', ISO_BLOCKS))
    data[pvd + 128:pvd + 132] = (struct.pack('<H', ISO_BLOCK)
                                 + struct.pack('>H', ISO_BLOCK))
    data[pvd + ISO_BLOCK:pvd + ISO_BLOCK + 7] = b'\xffCD001\x01'
    return write(tmp / 'disc.iso', bytes(data))


def protective_mbr(last_lba: int) -> bytes:
    entry = struct.pack('<B3sB3sII', 0, b'\x00\x02\x00', 0xee,
                        b'\xff\xff\xff', 1, last_lba)
    return entry + bytes(48) + b'\x55\xaa'


def gpt_header(lba: int, other: int, entries_lba: int, last: int) -> bytes:
    fields = [b'EFI PART', 0x00010000, GPT_HEADER.size, 0, 0, lba, other,
              34, last - 33, uuid.UUID(int=1).bytes_le, entries_lba,
              GPT_ENTRIES, GPT_ENTRY_SIZE,
              zlib.crc32(bytes(GPT_ENTRIES * GPT_ENTRY_SIZE))]
    fields[3] = zlib.crc32(GPT_HEADER.pack(*fields))
    return GPT_HEADER.pack(*fields)


def gpt_disk(tmp: pathlib.Path) -> str:
    """An empty GPT (sgdisk -v: no problems found) on a 1 MiB disk."""
    last = MiB // SECTOR - 1
    data = bytearray(MiB)
    data[446:SECTOR] = protective_mbr(last)
    data[SECTOR:SECTOR + GPT_HEADER.size] = gpt_header(1, last, 2, last)
    data[last * SECTOR:last * SECTOR + GPT_HEADER.size] = gpt_header(
        last, 1, last - 32, last)
    return write(tmp / 'gpt.raw', bytes(data))


def qcow2_hiding_mbr(tmp: pathlib.Path) -> str:
    return patch(created(tmp, 'qcow2', 'mbr.qcow2'), 446,
                 protective_mbr(2047))


def made_up_header(tmp: pathlib.Path) -> str:
    return write(tmp / 'image.foo', b'FOOIMAGE\x01\x00' + bytes(MiB))


def empty(tmp: pathlib.Path) -> str:
    return write(tmp / 'empty', b'')


# (case, builder, disk_format, qemu_format, virtual size)
ACCEPTED = [
    ('raw', random_raw, 'raw', 'raw', MiB),
    ('qcow2', qcow2_with_data, 'qcow2', 'qcow2', 4 * MiB),
    ('compressed qcow2', compressed_qcow2, 'qcow2', 'qcow2', MiB),
    ('qcow2 with leaked clusters', leaky_qcow2, 'qcow2', 'qcow2', 4 * MiB),
    ('vmdk streamOptimized', stream_optimized_vmdk, 'vmdk', 'vmdk', MiB),
    ('vmdk monolithicSparse', vmdk('monolithicSparse'), 'vmdk', 'vmdk', MiB),
    ('vhd', lambda tmp: created(tmp, 'vpc', 'disk.vhd', '-o',
                                'force_size=on'), 'vhd', 'vpc', MiB),
    ('vhdx', lambda tmp: created(tmp, 'vhdx', 'disk.vhdx'), 'vhdx', 'vhdx',
     MiB),
    ('vdi', lambda tmp: created(tmp, 'vdi', 'disk.vdi'), 'vdi', 'vdi', MiB),
    ('iso', iso, 'iso', 'raw', ISO_BLOCKS * ISO_BLOCK),
    ('gpt disk declared raw', gpt_disk, 'raw', 'raw', MiB),
]


@pytest.mark.parametrize('case,build,disk_format,qemu_format,size', ACCEPTED,
                         ids=[row[0] for row in ACCEPTED])
def test_accepted(tmp_path, case, build, disk_format, qemu_format, size):
    path = build(tmp_path)
    result = inspect.inspect_image(path, IMAGE_ID, disk_format,
                                   max_virtual_size=size)
    assert result == inspect.Inspection(
        disk_format=disk_format, qemu_format=qemu_format, virtual_size=size,
        actual_size=pathlib.Path(path).stat().st_size)


SUPPORTED = 'supported: raw, qcow2, vmdk, vhd, vhdx, vdi, iso'
DESCRIPTOR = ('vmdk is a text descriptor whose data is in separate extent '
              'files (flat or split extents are not allowed, only a single '
              'sparse vmdk)')
NO_HEADER = 'content is raw (no known image header) but disk_format is '

# (case, builder, disk_format, inspect_image kwargs, reason fragment,
#  whether qemu-img may run before the rejection)
REJECTED = [
    ('made-up header declared foo', made_up_header, 'foo', {},
     "disk_format 'foo' is not supported (%s)" % SUPPORTED, False),
    ('qed is not supported', random_raw, 'qed', {},
     "disk_format 'qed' is not supported (%s)" % SUPPORTED, False),
    ('no disk_format', random_raw, None, {},
     'disk_format None is not supported (%s)' % SUPPORTED, False),
    ('random bytes declared qcow2', random_raw, 'qcow2', {},
     NO_HEADER + 'qcow2', False),
    ('made-up header declared qcow2', made_up_header, 'qcow2', {},
     NO_HEADER + 'qcow2', False),
    ('empty file declared qcow2', empty, 'qcow2', {}, NO_HEADER + 'qcow2',
     False),
    ('first 100 bytes of a qcow2', qcow2_head, 'qcow2', {},
     NO_HEADER + 'qcow2', False),
    ('qcow2 declared raw', qcow2_with_data, 'raw', {},
     'content is qcow2 but disk_format is raw', False),
    ('qcow2 declared vmdk', qcow2_with_data, 'vmdk', {},
     'content is qcow2 but disk_format is vmdk', False),
    ('gpt disk declared qcow2', gpt_disk, 'qcow2', {},
     'content is gpt but disk_format is qcow2', False),
    ('iso declared raw', iso, 'raw', {},
     'content is iso but disk_format is raw', False),
    ('qcow2 with an MBR in its header', qcow2_hiding_mbr, 'qcow2', {},
     'content could not be identified: Multiple formats detected: ', False),
    ('qcow2 with a backing file', qcow2_with_backing_file, 'qcow2', {},
     'qcow2 failed safety checks: backing_file (Image has a backing file)',
     False),
    ('qcow2 with an external data file', qcow2_with_data_file, 'qcow2', {},
     'qcow2 failed safety checks: data_file (Image has data_file set)',
     False),
    ('qcow2 with an unknown feature', qcow2_with_unknown_feature, 'qcow2',
     {}, 'qcow2 failed safety checks: unknown_features (Unknown QCOW2 '
     'features found)', False),
    ('vmdk monolithicFlat', vmdk('monolithicFlat'), 'vmdk', {}, DESCRIPTOR,
     False),
    ('vmdk twoGbMaxExtentSparse', vmdk('twoGbMaxExtentSparse'), 'vmdk', {},
     DESCRIPTOR, False),
    ('vmdk descriptor naming a flat extent', vmdk_descriptor_to_flat, 'vmdk',
     {}, DESCRIPTOR, False),
    ('vmdk extent without descriptor', split_vmdk_extent, 'vmdk', {},
     'vmdk failed safety checks: descriptor (No descriptor found)', False),
    ('vmdk type not allowed', vmdk('monolithicSparse'), 'vmdk',
     {'vmdk_allowed_types': ('streamOptimized',)},
     'vmdk create-type monolithicSparse is not allowed '
     '(vmdk_allowed_types: streamOptimized)', True),
    ('no vmdk type allowed', stream_optimized_vmdk, 'vmdk',
     {'vmdk_allowed_types': []},
     'vmdk create-type streamOptimized is not allowed '
     '(vmdk_allowed_types: none)', True),
    ('qcow2 qemu-img cannot open', qcow2_bad_cluster_size, 'qcow2', {},
     "qemu-img info failed: qemu-img: Could not open '", True),
    ('truncated qcow2', truncated_qcow2, 'qcow2', {},
     'qcow2 is damaged: ', True),
    ('qcow2 over the root disk', qcow2_with_data, 'qcow2',
     {'max_virtual_size': 4 * MiB - 1}, 'virtual size 4194304 bytes exceeds '
     "the flavor's root disk of 4194303 bytes", True),
    ('raw over the root disk', random_raw, 'raw', {'max_virtual_size': 0},
     "virtual size 1048576 bytes exceeds the flavor's root disk of 0 bytes",
     True),
]


@pytest.fixture
def qemu_calls(monkeypatch) -> list:
    """The qemu-img commands run (really run), as argument tuples."""
    calls = []
    real = processutils.execute

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(processutils, 'execute', spy)
    return calls


@pytest.mark.parametrize('case,build,disk_format,kwargs,reason,qemu_runs',
                         REJECTED, ids=[row[0] for row in REJECTED])
def test_rejected(tmp_path, qemu_calls, case, build, disk_format, kwargs,
                  reason, qemu_runs):
    path = build(tmp_path)
    with pytest.raises(inspect.ImageRejected) as err:
        inspect.inspect_image(path, IMAGE_ID, disk_format, **kwargs)
    assert reason in err.value.reason
    assert str(err.value) == 'Image %s rejected: %s' % (IMAGE_ID,
                                                        err.value.reason)
    assert bool(qemu_calls) == qemu_runs


def test_truncated_qcow2_needs_qemu_img_check(tmp_path):
    """qemu-img info passes a truncated qcow2; only check exits 2."""
    path = truncated_qcow2(tmp_path)
    info = subprocess.run(['qemu-img', 'info', '--output=json', path],
                          capture_output=True)
    assert info.returncode == 0
    check = subprocess.run(['qemu-img', 'check', '--output=json', path],
                           capture_output=True, text=True)
    assert check.returncode == inspect.CHECK_CORRUPT
    assert json.loads(check.stdout)['corruptions'] > 0
    with pytest.raises(inspect.ImageRejected) as err:
        inspect.inspect_image(path, IMAGE_ID, 'qcow2')
    assert ('corruptions: ERROR: counting reference for region exceeding '
            'the end of the file' in err.value.reason)


def test_leaked_clusters_exit_3(tmp_path):
    check = subprocess.run(['qemu-img', 'check', '--output=json',
                            leaky_qcow2(tmp_path)],
                           capture_output=True, text=True)
    assert check.returncode == inspect.CHECK_LEAKS_ONLY
    assert json.loads(check.stdout)['leaks'] == 1


def test_qemu_img_runs_limited(tmp_path, monkeypatch):
    calls = []
    real = processutils.execute

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(processutils, 'execute', spy)
    path = qcow2_with_data(tmp_path)
    inspect.inspect_image(path, IMAGE_ID, 'qcow2')
    assert [args for args, _kwargs in calls] == [
        ('qemu-img', 'info', '-f', 'qcow2', '--output=json', '--force-share',
         path),
        ('qemu-img', 'check', '-f', 'qcow2', '--output=json', path)]
    for _args, kwargs in calls:
        assert kwargs['prlimit'].cpu_time == 30
        assert kwargs['prlimit'].address_space == 1 << 30
        assert kwargs['env_variables'] == {'LC_ALL': 'C', 'LANG': 'C',
                                           'PATH': os.environ['PATH']}


def test_relative_path_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    qemu_img('create', '-f', 'vmdk', '-o', 'subformat=monolithicSparse',
             './-disk.vmdk', '1M')
    result = inspect.inspect_image('-disk.vmdk', IMAGE_ID, 'vmdk')
    assert result.virtual_size == MiB


# What qemu-img would have to say for the checks after the inspector to
# matter; the file itself passes the inspector.

def info(fmt: str = 'qcow2', **fields) -> str:
    report = {'format': fmt, 'virtual-size': MiB, 'filename': 'x'}
    report.update(fields)
    return json.dumps(report)


def vmdk_info(**data) -> str:
    return info('vmdk', **{'format-specific': {'type': 'vmdk', 'data': data}})


def failure(exit_code: int, stderr: str = '', stdout: str = ''):
    return processutils.ProcessExecutionError(
        exit_code=exit_code, stdout=stdout, stderr=stderr, cmd='qemu-img')


CLEAN = json.dumps({'check-errors': 0, 'format': 'qcow2'})
OPEN_FAILED = "qemu-img: Could not open 'x': Permission denied\nmore\n"

# (case, disk_format, qemu-img info result, qemu-img check result, reason)
FAKED = [
    ('info reports another format', 'qcow2', info('raw'), CLEAN,
     'qemu-img info reports format raw, expected qcow2'),
    ('info reports a backing file', 'qcow2',
     info(**{'backing-filename': 'base'}), CLEAN,
     'qcow2 has a backing file: base'),
    ('info reports a full backing file', 'qcow2',
     info(**{'full-backing-filename': '/etc/shadow'}), CLEAN,
     'qcow2 has a backing file: /etc/shadow'),
    ('info reports a data file', 'qcow2',
     info(**{'format-specific': {'data': {'data-file': 'ext.raw'}}}), CLEAN,
     'qcow2 has an external data file: ext.raw'),
    ('info without virtual size', 'qcow2', info(**{'virtual-size': None}),
     CLEAN, 'qemu-img info reports no virtual size'),
    ('info not JSON', 'qcow2', 'garbage\n', CLEAN,
     'qemu-img info printed no JSON object: garbage'),
    ('info killed by prlimit', 'qcow2', failure(-9), CLEAN,
     'qemu-img info was killed by signal 9 (limits: 30 s CPU, 1073741824 '
     'bytes of address space)'),
    ('info fails', 'qcow2', failure(1, OPEN_FAILED), CLEAN,
     "qemu-img info failed: qemu-img: Could not open 'x': Permission denied "
     '(and 1 more lines)'),
    ('check fails', 'qcow2', info(), failure(1, OPEN_FAILED),
     "qemu-img check failed: qemu-img: Could not open 'x'"),
    ('check unsupported', 'qcow2', info(), failure(63, 'not supported'),
     'qemu-img check failed: not supported'),
    ('check exit 0 but corruptions', 'qcow2', info(),
     json.dumps({'corruptions': 1}), 'qcow2 is damaged: 1 corruptions'),
    ('check exit 2 with check errors', 'qcow2', info(),
     failure(2, 'ERROR x', json.dumps({'check-errors': 2})),
     'qcow2 is damaged: 2 check errors: ERROR x'),
    ('check exit 2, JSON clean', 'qcow2', info(),
     failure(2, 'ERROR y', CLEAN),
     'qcow2 is damaged: qemu-img check exit code 2: ERROR y'),
    ('check exit 3 with corruptions', 'qcow2', info(),
     failure(3, 'Leaked', json.dumps({'leaks': 1, 'corruptions': 1})),
     'qcow2 is damaged: 1 corruptions: Leaked'),
    ('check output not JSON', 'qcow2', info(), '', 'qemu-img check printed '
     'no JSON object: no output'),
    ('vmdk without create-type', 'vmdk', vmdk_info(), None,
     'vmdk create-type could not be determined'),
    ('vmdk extent in another file', 'vmdk',
     vmdk_info(**{'create-type': 'monolithicSparse',
                  'extents': [{'filename': '/var/lib/nova/secret',
                               'format': 'FLAT'}]}), None,
     'vmdk has an extent in another file: /var/lib/nova/secret'),
]


def fake_qemu_img(results: dict):
    def execute(*args, **kwargs):
        result = results[args[1]]
        if isinstance(result, Exception):
            raise result
        return result, ''
    return execute


@pytest.mark.parametrize('case,disk_format,info_result,check_result,reason',
                         FAKED, ids=[row[0] for row in FAKED])
def test_qemu_img_says_no(tmp_path, monkeypatch, case, disk_format,
                          info_result, check_result, reason):
    path = (qcow2_with_data(tmp_path) if disk_format == 'qcow2'
            else vmdk('monolithicSparse')(tmp_path))
    monkeypatch.setattr(processutils, 'execute', fake_qemu_img(
        {'info': info_result, 'check': check_result}))
    with pytest.raises(inspect.ImageRejected) as err:
        inspect.inspect_image(path, IMAGE_ID, disk_format)
    assert reason in err.value.reason
    assert IMAGE_ID in str(err.value)


def test_image_rejected():
    err = inspect.ImageRejected(image='abc', reason='why')
    assert isinstance(err, exception.FastcloneException)
    assert err.reason == 'why'
    assert str(err) == 'Image abc rejected: why'


@pytest.mark.parametrize('disk_format,qemu_format', [
    ('raw', 'raw'), ('qcow2', 'qcow2'), ('vmdk', 'vmdk'), ('vhd', 'vpc'),
    ('vhdx', 'vhdx'), ('vdi', 'vdi'), ('iso', 'raw')])
def test_qemu_format_for(disk_format, qemu_format):
    assert inspect.qemu_format_for(disk_format) == qemu_format
