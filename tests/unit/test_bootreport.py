"""The boot benchmark's pure parts: its table, docs, and what it counts."""

import types
from unittest import mock

import docutils.core
import pytest

from benchmarks import boot
from benchmarks import bootreport
from benchmarks import report
from fastclone_lab import cloudboot

UUID = '1d3c5a8e-0000-4000-8000-00000000abcd'
SUM = 'a' * 64


def _boot(active, marker, error=''):
    return {'host': 'fast1', 'image': 'raw', 'server_id': UUID,
            'active_s': active, 'marker_s': marker, 'error': error}


def _group(backend, image, markers, written=0, **kw):
    group = {'backend': backend, 'image': image, 'hosts': ['h'],
             'servers': len(markers), 'wall_s': 30.0,
             'boots': [_boot(m and m - 5, m) for m in markers],
             'ceph_written_bytes': written, 'downloads': 0,
             'downloaded_bytes': 0, 'conversions': 0, 'imports': 0,
             'not_deleted': []}
    group.update(kw)
    return group


def _results(label=''):
    return {
        'machine': {'date': '2026-12-06', 'cpus': 2, 'memory_gib': 23.5,
                    'python': '3.11.2', 'ceph': 'lab'},
        'config': {'servers': 4, 'flavor': 'lab.tiny', 'label': label},
        'groups': [
            _group('fastrbd', 'raw', [10.0, 12.0, 11.0, 20.0]),
            _group('stock rbd', 'qcow2', [30.0, 40.0, None, 35.0],
                   written=256 << 20, downloads=1, conversions=1,
                   imports=1)],
        'limit': {'one_s': [2.0, 2.5, 2.2], 'at_once_s': [6.0, 7.0, 8.0,
                                                          9.0],
                  'at_once': 4, 'at_once_failures': 0},
    }


def test_summary_percentiles_and_failures():
    s = bootreport.summary(_results()['groups'][1])
    assert (s['marker_p50'], s['marker_p95'], s['marker_max']) == (
        35.0, 40.0, 40.0)
    assert s['active_p50'] == 30.0
    assert s['failures'] == 1


def test_an_error_with_a_marker_is_a_failure():
    group = _group('fastrbd', 'raw', [10.0])
    group['boots'][0]['error'] = 'guest read sum x, image has y'
    assert bootreport.failed(group) == 1


def test_table_has_every_group_and_the_limit():
    name, header, rows = bootreport.table(_results('loaded machine'))
    assert 'loaded machine' in name and '4 servers at once' in name
    assert [r[:2] for r in rows] == [
        ['fastrbd', 'raw'], ['stock rbd', 'qcow2'],
        [bootreport.LIMIT, 'raw, one at a time'],
        [bootreport.LIMIT, 'raw, all at once']]
    stock = dict(zip(header, rows[1]))
    assert stock['failures'] == '1'
    assert stock['Ceph written MiB'] == '256'
    assert (stock['downloads'], stock['conversions']) == ('1', '1')
    limit = dict(zip(header, rows[3]))
    assert (limit['servers'], limit['marker p50 s']) == ('4', '8.00')
    assert all(len(r) == len(header) for r in rows)


def test_failures_count_all_groups():
    assert bootreport.failures(_results()) == 1


def test_one_line():
    line = bootreport.one_line(_results()['groups'][1])
    assert line.startswith('3/4 markers')
    assert '1 conversions' in line


def _parse(text):
    docutils.core.publish_doctree(text, settings_overrides={
        'report_level': 2, 'halt_level': 2})


def test_readme_and_doc_blocks_parse_and_replace(tmp_path):
    readme = tmp_path / 'README.rst'
    readme.write_text('Title\n=====\n\n%s\n\nold\n\n%s\n\nafter\n' % (
        bootreport.BEGIN, bootreport.END))
    (tmp_path / 'doc' / 'source').mkdir(parents=True)
    doc = tmp_path / report.DOC
    doc.write_text('Perf\n====\n\nthe other tables\n')
    bootreport.write_docs(_results('loaded'), str(tmp_path / 'out'),
                          str(readme))
    text = readme.read_text()
    assert 'old' not in text and text.endswith('after\n')
    assert '.. image:: out/boot.png' in text
    _parse(text)
    page = doc.read_text()
    assert page.startswith('Perf\n====\n\nthe other tables')
    assert '../../out/boot.png' in page and 'stock rbd' in page
    _parse(page)


def test_benchmark_rewrite_of_the_doc_page_keeps_the_boot_block(tmp_path):
    block = bootreport.doc_block(_results(), 'boot.png')
    old = 'old page\n\n' + block + '\n'
    assert bootreport.keep_block(old, 'new page\n') == (
        'new page\n\n' + block + '\n')
    assert bootreport.keep_block('no block', 'new page\n') == 'new page\n'


def test_chart_is_written(tmp_path):
    pytest.importorskip('matplotlib')
    bootreport.chart(_results(), str(tmp_path / 'boot.png'))
    assert (tmp_path / 'boot.png').stat().st_size > 1000


@pytest.mark.parametrize('argv,kind', [
    (['qemu-img', 'convert', '-t', 'none', '-O', 'raw', '-f', 'qcow2', 'a',
      'b'], 'conversion'),
    (['/usr/bin/qemu-img', 'convert', '-O', 'raw', 'a', 'b'], 'conversion'),
    (['qemu-img', 'convert', '-p', '-f', 'raw', '-O', 'raw', 'a',
      'rbd:vms/x'], 'import'),
    (['rbd', 'import', '--pool', 'vms', 'a', 'b'], 'import'),
    (['qemu-img', 'info', 'a'], ''),
    (['rbd', 'ls'], ''),
    ([], ''),
])
def test_classify(argv, kind):
    assert cloudboot.classify(argv) == kind


def test_glance_downloads_counts_that_image_data_gets_only():
    other = '22222222-0000-4000-8000-000000000000'
    log = '\n'.join([
        '[pid: 1|app: 0|req: 1/1] 127.0.0.1 () {34 vars in 563 bytes} [Sun '
        'Dec  6 03:19:58 2026] GET /v2/images/%s/file => generated 4096 '
        'bytes in 20 msecs (HTTP/1.1 200)' % UUID,
        '[pid: 1] GET /v2/images/%s => generated 900 bytes' % UUID,
        '[pid: 1] PUT /v2/images/%s/file => generated 0 bytes' % UUID,
        '[pid: 1] GET /v2/images/%s/file => generated 10 bytes' % other,
        '[pid: 1] GET /v2/images/%s/file => generated 8 bytes' % UUID])
    assert cloudboot.glance_downloads(log, [UUID]) == (2, 4104)


def test_pool_stored():
    df = {'pools': [{'name': 'images', 'stats': {'stored': 5}},
                    {'name': 'vms', 'stats': {'stored': 42}}]}
    assert cloudboot.pool_stored(df, 'vms') == 42
    with pytest.raises(KeyError):
        cloudboot.pool_stored(df, 'nope')


def _image():
    return cloudboot.Image('raw', 'img', 'name', SUM)


def test_marker_of_another_server_is_not_this_ones():
    b = cloudboot.Boot('fast1', 'raw', server_id=UUID, created=100.0)
    line = 'FASTCLONE-GUEST image=alpha uuid=%s sum=%s disk=vda\r\n'
    cloudboot.check_marker(b, _image(), line % ('other', SUM), 103.0)
    assert b.marker_s is None
    cloudboot.check_marker(b, _image(), line % (UUID, SUM), 104.5)
    assert b.marker_s == 4.5 and not b.error and b.done
    assert b.marker_line.startswith('FASTCLONE-GUEST image=alpha uuid=')


def test_marker_with_a_wrong_sum_is_an_error():
    b = cloudboot.Boot('stock1', 'qcow2', server_id=UUID, created=0.0)
    text = 'FASTCLONE-GUEST image=alpha uuid=%s sum=%s\n' % (UUID, 'b' * 64)
    cloudboot.check_marker(b, _image(), text, 9.0)
    assert b.done and 'sum' in b.error


def test_console_path(tmp_path):
    assert cloudboot.console_path('/lab/cloud/nova', 'fast2', UUID) == (
        '/lab/cloud/nova/compute-fast2/instances/%s/console.log' % UUID)


def test_log_tail_reads_what_was_added(tmp_path):
    path = tmp_path / 'uwsgi.log'
    path.write_text('before\n')
    tail = cloudboot.LogTail(str(path))
    with open(path, 'a') as f:
        f.write('after\n')
    assert tail.read() == 'after\n'
    assert cloudboot.LogTail(str(tmp_path / 'none')).read() == ''


def test_capacity_is_memory_bound():
    assert boot.capacity(24 * 1024, guest_mib=256, reserve_mib=4096) == 80
    assert boot.capacity(1024) == 1


def test_plan_needs_every_host_asked_for():
    up = {'fast1', 'fast2', 'stock1'}
    assert boot.plan(['fastrbd', 'stock rbd'], up) == [
        ('fastrbd', ('fast1', 'fast2'), 'raw'),
        ('fastrbd', ('fast1', 'fast2'), 'qcow2'),
        ('stock rbd', ('stock1',), 'raw'),
        ('stock rbd', ('stock1',), 'qcow2')]
    with pytest.raises(SystemExit, match='stockq'):
        boot.plan(['stock qcow2'], up)


class _Services:
    """conn.compute.services: each call, the next list of hosts up."""

    def __init__(self, *rounds):
        self.rounds = list(rounds)
        self.calls = 0

    def services(self, binary):
        up = self.rounds[min(self.calls, len(self.rounds) - 1)]
        self.calls += 1
        return [types.SimpleNamespace(host=h, state='up', status='enabled')
                for h in up] + [types.SimpleNamespace(
                    host='off', state='up', status='disabled')]


def _clock():
    now = [0.0]
    return (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))


def test_hosts_are_awaited_until_their_first_heartbeat():
    conn = types.SimpleNamespace(compute=_Services(
        {'fast1'}, {'fast1', 'stock1'}, {'fast1', 'stock1', 'stockq'}))
    clock, sleep = _clock()
    assert cloudboot.up_hosts_awaited(
        conn, {'stock1', 'stockq'}, clock=clock, sleep=sleep) == {
        'fast1', 'stock1', 'stockq'}
    assert conn.compute.calls == 3


def test_hosts_never_up_are_awaited_until_the_timeout():
    conn = types.SimpleNamespace(compute=_Services({'fast1'}))
    clock, sleep = _clock()
    assert cloudboot.up_hosts_awaited(
        conn, {'stock1'}, timeout=10, clock=clock, sleep=sleep) == {'fast1'}
    assert clock() >= 10


def _fake_convert(tmp_path, source, delay=0.0):
    """A real process whose argv is qemu-img convert's.

    A Python script named 'convert', run with argv[0] 'qemu-img', after
    delay seconds as its forked parent.
    """
    import subprocess
    import sys
    (tmp_path / 'convert').write_text('import time\ntime.sleep(1)\n')
    code = ('import os, sys, time; time.sleep(%r); os.execv(sys.executable, '
            '["qemu-img", "convert", "-f", "qcow2", "-O", "raw", '
            'sys.argv[1], "b"])' % delay)
    return subprocess.Popen([sys.executable, '-c', code, source],
                            cwd=str(tmp_path))


def test_proc_watch_sees_a_conversion_of_its_lab(tmp_path):
    import time
    other = _fake_convert(tmp_path, '/elsewhere/a')
    with cloudboot.ProcWatch(str(tmp_path)) as watch:
        _fake_convert(tmp_path, str(tmp_path / 'a'), delay=0.3).wait()
        time.sleep(0.2)
    other.wait()
    assert watch.counts() == {'conversion': 1, 'import': 0}


def test_plain_limit_at_once_waits_the_groups_timeout():
    booted = types.SimpleNamespace(seconds=4.5, marker={'image': 'alpha'})
    with mock.patch.object(boot.guest, 'boot_plain', autospec=True,
                           return_value=booted) as boot_plain:
        limit = boot.plain_limit('/lab/guest/alpha.raw', 3, 2, 900.0)
    assert boot_plain.call_args_list[:2] == [
        mock.call('/lab/guest/alpha.raw')] * 2
    assert boot_plain.call_args_list[2:] == [
        mock.call('/lab/guest/alpha.raw', timeout=900.0)] * 3
    assert (limit['at_once'], limit['at_once_failures'],
            limit['timeout_s']) == (3, 0, 900.0)


def test_limit_only_keeps_the_groups_and_says_so(tmp_path):
    results = _results()
    bootreport.write(results, str(tmp_path))
    args = boot.parse(['--limit-only', '--out', str(tmp_path),
                       '--guest-cache', '/lab/guest', '--timeout', '600',
                       '--limit-repeat', '1'])
    again = {'one_s': [4.6], 'at_once_s': [310.0] * 4, 'at_once': 4,
             'at_once_failures': 0, 'timeout_s': 600.0}
    with mock.patch.object(boot, 'plain_limit', autospec=True,
                           return_value=dict(again)) as plain_limit:
        rewritten = boot.limit_again(args, lambda msg: None)
    plain_limit.assert_called_once_with('/lab/guest/alpha.raw', 4, 1, 600.0)
    assert rewritten['groups'] == results['groups']
    assert rewritten['limit']['at_once_s'] == [310.0] * 4
    assert rewritten['limit']['measured_again']
    note = bootreport.limit_note(rewritten)
    assert 'not in the same run' in note
    assert note in bootreport.markdown(rewritten)
    assert note in bootreport.doc_block(rewritten, 'boot.png')
    assert bootreport.limit_note(results) == ''
