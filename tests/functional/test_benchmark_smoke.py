"""The benchmark's smoke run, so it cannot rot (issue: benchmark)."""

import glob
import json
import subprocess
import sys

from benchmarks import report
from tests.functional.conftest import lab_environ
from tests.functional.conftest import REPO

BACKENDS = {'rbd', 'qcow2', 'fastrbd'}


def test_benchmark_smoke_runs_end_to_end(lab, tmp_path):
    env = lab_environ(lab)
    proc = subprocess.run(
        [sys.executable, '-m', 'benchmarks.run', '--smoke', '--out',
         str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=900)
    # enough for an aborted worker's thread stacks (PYTHONFAULTHANDLER)
    assert proc.returncode == 0, proc.stderr[-15000:]
    check_smoke_results(tmp_path)


def check_smoke_results(tmp_path):
    """What a smoke run wrote into tmp_path."""
    # results.json on the default lab, results-3osd.json on 3 OSDs
    [path] = glob.glob(str(tmp_path / 'results*.json'))
    with open(path) as f:
        results = json.load(f)
    names = report.files(results)
    assert path.endswith('/' + names['json'])
    assert results['lab']['osds'] >= 1
    assert results['lab']['pool_size'] == min(3, results['lab']['osds'])
    assert set(results['limits']) == {
        'clone_primitive_ms', 'clone_and_resize_primitive_ms',
        'glance_get_ms', 'root_disk_primitive_ms',
        'clones_concurrent_16_threads_s',
        'clones_and_resizes_concurrent_16_threads_s', 'rbd_import_raw_s',
        'qemu_img_convert_to_rbd_s', 'glance_download_qcow2_s'}
    assert all(v > 0 for v in results['limits'].values())
    scenarios = results['scenarios']
    assert len(scenarios) == 7
    for name, by_backend in scenarios.items():
        expected = BACKENDS if not name.startswith('raw clone') else \
            {'rbd', 'fastrbd'}
        assert set(by_backend) == expected, name
        for backend, metrics in by_backend.items():
            assert metrics['failures'] == 0, (name, backend,
                                              metrics['errors'])
            assert metrics['times_ms'], (name, backend)
            # stock Qcow2 writes local files only: what the OSDs wrote
            # meanwhile is the mgr's own (a few KiB)
            written = metrics['osd_written_bytes']
            assert (written < 64 * 1024 if backend == 'qcow2' else
                    written > 0), (name, backend, written)
    # a full copy per stock Rbd disk, every replica written
    stock = next(v for k, v in scenarios.items() if 'first' in k)['rbd']
    assert stock['osd_written_bytes'] >= (stock['ceph_allocated_bytes'] *
                                          results['lab']['pool_size'])
    two_hosts = next(v for k, v in scenarios.items() if '2 hosts' in k)
    assert two_hosts['fastrbd']['conversions'] == 1
    assert two_hosts['rbd']['conversions'] == 2
    assert len(results['targets']) == 15
    storm = results['storm']
    assert storm['disks'] == 12 and storm['hosts'] == 2
    for backend in ('rbd', 'fastrbd'):
        assert storm[backend]['failures'] == 0, storm[backend]['errors']
        assert len(storm[backend]['times_ms']) == 12
    # fastrbd: each image fetched once cluster-wide, qcow2 converted once
    assert storm['fastrbd']['downloads'] == 2
    assert storm['fastrbd']['conversions'] == 1
    assert storm['rbd']['imports'] == 8     # a full copy per non-clonable
    fleet = results['fleet']
    assert fleet['hosts'] == 3 and fleet['disks'] == 9
    for backend in ('rbd', 'fastrbd'):
        assert fleet[backend]['failures'] == 0, fleet[backend]['errors']
        assert len(fleet[backend]['times_ms']) == 9
    # every host of stock Nova downloads what it cannot clone, once;
    # fastrbd's hosts fetch each such image once between them
    assert fleet['rbd']['downloads_by_image'] == {
        'raw (rbd store)': 0, 'qcow2': 3, 'raw (file store)': 3}
    assert fleet['rbd']['conversions'] == 3
    assert fleet['fastrbd']['downloads_by_image'] == {
        'raw (rbd store)': 0, 'qcow2': 1, 'raw (file store)': 1}
    assert fleet['fastrbd']['conversions'] == 1
    fleet_target = next(t for t in results['targets']
                        if t['target'].startswith('fleet'))
    assert fleet_target['met'], fleet_target
    raw = next(v for k, v in scenarios.items() if k.startswith('raw clone'))
    assert {'glance', 'clone', 'resize'} <= set(raw['fastrbd']['seconds'])
    first = next(v for k, v in scenarios.items() if 'first' in k)
    assert {'download', 'inspect', 'convert', 'publish'} <= set(
        first['fastrbd']['first_seconds'])
    life = results['lifecycle']
    assert life['bases'] == 20 and life['deleted_images'] == 2
    assert life['with_clones'] == 2
    # at least its own two deleted images' bases
    assert life['first']['retired'] >= 2 and life['first']['removed'] >= 2
    assert life['steady']['retired'] == life['steady']['removed'] == 0
    # without the index every base is opened, its own 18 live ones too;
    # in steady state none of those (only retired, temp, look-alikes)
    assert life['unindexed']['opened'] >= 18
    assert life['steady']['opened'] <= life['unindexed']['opened'] - 18
    assert life['first']['rados_ops'] > 0 and life['first']['seconds'] > 0
    # every HTTP request to Glance counted, whatever its method
    for p in (life['first'], life['steady'], life['unindexed']):
        assert p['glance_requests'] == sum(p['glance_by_method'].values())
        assert 1 <= p['glance_gets'] <= p['glance_requests']
    md = (tmp_path / names['md']).read_text()
    assert '## targets' in md and '| fastrbd |' in md
    assert '## lifecycle pass: 20 bases' in md
    assert '## boot storm: 12 disks on 2 hosts' in md
    assert '## fleet: 3 hosts spawning at once' in md
    assert '## first qcow2 disk: seconds per step' in md
    assert '## raw clone path: ms per disk' in md
    for chart in report.charts(results):
        assert (tmp_path / chart).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(report.charts(results)) == 3
