"""Cache names and staleness, progress, fetch."""

import hashlib
import io
import resource
import sys
from unittest import mock

from oslo_concurrency import processutils
import pytest

from fastclone_backend.cache import fetch
from fastclone_backend.cache import naming
from fastclone_backend.cache import progress
from fastclone_backend import exception

IMAGE_ID = 'f0e1d2c3-b4a5-4697-8899-aabbccddeeff'
INSTANCE_UUIDS = ['00000000-0000-4000-8000-000000000000',
                  'ffffffff-ffff-4fff-bfff-ffffffffffff',
                  'fa57c10e-ba5e-4000-8000-000000000001']


# ------------------------------------------------------------- names
def test_names_are_predictable():
    assert naming.base_name(IMAGE_ID) == 'fastclone-base-' + IMAGE_ID
    assert naming.tmp_name(IMAGE_ID, 'ab12') == \
        'fastclone-tmp-%s-ab12' % IMAGE_ID
    assert naming.lock_object(IMAGE_ID) == 'fastclone-lock-' + IMAGE_ID
    assert naming.tmp_name(IMAGE_ID, 'x').startswith(
        naming.tmp_prefix(IMAGE_ID))


@pytest.mark.parametrize('instance_uuid', INSTANCE_UUIDS)
def test_nova_instance_cleanup_can_never_match(instance_uuid):
    # LibvirtDriver._cleanup_rbd removes every name starting with the uuid
    for name in (naming.base_name(instance_uuid),
                 naming.tmp_name(instance_uuid, 'x'),
                 naming.retired_name(instance_uuid, 'x'),
                 naming.lock_object(instance_uuid)):
        assert not name.startswith(instance_uuid)
        assert naming.is_cache_name(name) or name.startswith('fastclone-lock')


def test_kind_and_image_id_of_our_names():
    for name, kind in ((naming.base_name(IMAGE_ID), 'base'),
                       (naming.tmp_name(IMAGE_ID, 'ab12cd34'), 'tmp'),
                       (naming.retired_name(IMAGE_ID, 'ef56ab78'),
                        'retired')):
        assert naming.kind_of(name) == kind
        assert naming.image_id_of(name) == IMAGE_ID
        assert naming.is_cache_name(name)


@pytest.mark.parametrize('name', [
    INSTANCE_UUIDS[0] + '_disk', 'volume-' + IMAGE_ID, IMAGE_ID,
    naming.lock_object(IMAGE_ID), 'fastclone-lifecycle', ''])
def test_other_names_are_not_ours(name):
    assert naming.kind_of(name) is None
    assert naming.image_id_of(name) is None
    assert not naming.is_cache_name(name)


def test_retired_name_keeps_the_image_id_first():
    name = naming.retired_name(IMAGE_ID, 'ab12cd34')
    assert name == 'fastclone-retired-%s-ab12cd34' % IMAGE_ID


# ------------------------------------------------------------- staleness
META = {'id': IMAGE_ID, 'os_hash_algo': 'sha512', 'os_hash_value': 'ab' * 64,
        'checksum': 'cd' * 16, 'size': 1234,
        'updated_at': '2026-11-21T07:00:00Z'}


def test_fingerprint_is_string_metadata():
    fp = naming.fingerprint(META)
    assert fp['fastclone.os_hash_value'] == 'ab' * 64
    assert fp['fastclone.size'] == '1234'
    assert all(isinstance(v, str) for v in fp.values())


def test_fingerprint_never_stores_an_empty_value():
    # the Pacific bindings' metadata_list() drops empty values
    fp = naming.fingerprint({'id': IMAGE_ID, 'checksum': 'cd' * 16})
    assert fp['fastclone.os_hash_value'] == naming.MISSING
    assert fp['fastclone.size'] == naming.MISSING
    assert all(fp.values())
    assert naming.stale_reason(fp, {'id': IMAGE_ID,
                                    'checksum': 'cd' * 16}) is None


def test_current_base_is_not_stale():
    assert naming.stale_reason(naming.fingerprint(META), META) is None


def test_metadata_only_update_keeps_the_base():
    changed = dict(META, updated_at='2026-11-22T00:00:00Z')
    assert naming.stale_reason(naming.fingerprint(META), changed) is None


@pytest.mark.parametrize('key,value', [('os_hash_value', 'ef' * 64),
                                       ('checksum', '00' * 16),
                                       ('size', 999), ('id', 'other')])
def test_changed_data_makes_it_stale(key, value):
    reason = naming.stale_reason(naming.fingerprint(META),
                                 dict(META, **{key: value}))
    assert reason.startswith(key + ' is ')


def test_base_without_fingerprint_is_stale():
    assert naming.stale_reason({}, META) is not None


# ------------------------------------------------------------- progress
def test_progress_logs_every_tenth_and_interval():
    now = [0.0]
    prog = progress.Progress(IMAGE_ID, 'download', 100, interval=10,
                             clock=lambda: now[0])
    with mock.patch.object(progress.LOG, 'info', autospec=True) as info:
        for done in range(1, 101):
            prog.update(done)
        assert info.call_count == 10
        now[0] = 25.0
        prog.update(100)   # 10 s passed: one more line
        assert info.call_count == 11
        prog.finish()
    args = info.call_args[0][1]
    assert args['step'] == 'download' and args['image'] == IMAGE_ID


# ------------------------------------------------------------- fetch
def _meta(data, **kw):
    meta = {'id': IMAGE_ID, 'size': len(data), 'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(data).hexdigest()}
    meta.update(kw)
    return meta


def _write(meta, chunks):
    out = io.BytesIO()
    writer = fetch.VerifyingWriter(out, meta, interval=10)
    for chunk in chunks:
        writer.write(chunk)
    writer.verify()
    return out.getvalue()


def test_verifying_writer_accepts_the_right_data():
    data = b'x' * 1000 + b'y' * 24
    assert _write(_meta(data), [data[:500], data[500:]]) == data


def test_verifying_writer_hash_mismatch():
    data = b'abc' * 10
    with pytest.raises(exception.ImageRejected) as err:
        _write(_meta(data), [data[:-1] + b'X'])
    assert 'sha512 of the data is' in err.value.reason
    assert IMAGE_ID in str(err.value)


def test_verifying_writer_size_mismatch():
    data = b'abc' * 10
    with pytest.raises(exception.ImageRejected) as err:
        _write(_meta(data), [data[:-3]])
    assert err.value.reason == 'downloaded 27 bytes, Glance says 30'


def test_md5_checksum_used_without_os_hash():
    data = b'hello'
    meta = {'id': IMAGE_ID, 'size': 5,
            'checksum': hashlib.md5(data).hexdigest()}
    assert fetch.expected_digest(meta) == ('md5', meta['checksum'])
    assert _write(meta, [data]) == data


def test_check_room():
    with mock.patch.object(fetch, 'free_bytes', return_value=100):
        fetch.check_room('/w', 100, IMAGE_ID)
        with pytest.raises(exception.CacheUnavailable) as err:
            fetch.check_room('/w', 101 << 20, IMAGE_ID)
    assert err.value.kind == 'workdir_full'
    assert str(err.value) == (
        'Image %s: the converted-image cache cannot be used: the work '
        'directory /w is full: 101 MiB needed, 0 MiB free; to fix: free '
        'space there, or point [fastclone] work_dir at a larger filesystem'
        % IMAGE_ID)


def test_prlimit_wraps_the_command():
    cmd = fetch.prlimit(['qemu-img', 'info', 'x'], 1 << 30, 60)
    assert cmd[:3] == [sys.executable, '-m', 'oslo_concurrency.prlimit']
    assert cmd[-4:] == ['--', 'qemu-img', 'info', 'x']
    assert '--as=1073741824' in cmd and '--cpu=60' in cmd


@pytest.mark.parametrize('hard, expected', [
    (resource.RLIM_INFINITY, 8 << 20),   # ulimit -s unlimited
    (64 << 20, 8 << 20),                 # a larger limit
    (4 << 20, 4 << 20),                  # capped below 8 MiB: kept
])
def test_tools_run_with_a_fixed_stack_limit(hard, expected):
    with mock.patch.object(fetch.resource, 'getrlimit', autospec=True,
                           return_value=(hard, hard)):
        assert fetch.tool_stack() == expected
        assert '--stack=%d' % expected in fetch.prlimit(['rbd'], 1, 1)


def test_run_with_progress_parses_percentages():
    prog = progress.Progress(IMAGE_ID, 'convert', 1000, interval=100)
    script = ("import sys; sys.stdout.write('    (10.00/100%)\\r    "
              "(55.50/100%)\\rImporting image: 100% complete...done.\\n')")
    fetch.run_with_progress([sys.executable, '-c', script], prog)
    assert prog.done == 1000


def test_run_with_progress_failure_keeps_output():
    prog = progress.Progress(IMAGE_ID, 'convert', 1000)
    script = "import sys; print('qemu-img: Could not open'); sys.exit(3)"
    with pytest.raises(processutils.ProcessExecutionError) as err:
        fetch.run_with_progress([sys.executable, '-c', script], prog)
    assert err.value.exit_code == 3
    assert 'Could not open' in err.value.stdout
