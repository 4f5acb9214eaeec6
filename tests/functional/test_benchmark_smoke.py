"""The benchmark's smoke run, so it cannot rot (issue: benchmark)."""

import json
import subprocess
import sys

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
    with open(tmp_path / 'results.json') as f:
        results = json.load(f)
    assert set(results['limits']) == {
        'clone_primitive_ms', 'clone_and_resize_primitive_ms',
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
    two_hosts = next(v for k, v in scenarios.items() if '2 hosts' in k)
    assert two_hosts['fastrbd']['conversions'] == 1
    assert two_hosts['rbd']['conversions'] == 2
    assert len(results['targets']) == 8
    storm = results['storm']
    assert storm['disks'] == 12
    for backend in ('rbd', 'fastrbd'):
        assert storm[backend]['failures'] == 0, storm[backend]['errors']
        assert len(storm[backend]['times_ms']) == 12
    # fastrbd: each image fetched once cluster-wide, qcow2 converted once
    assert storm['fastrbd']['downloads'] == 2
    assert storm['fastrbd']['conversions'] == 1
    assert storm['rbd']['imports'] == 8     # a full copy per non-clonable
    raw = next(v for k, v in scenarios.items() if k.startswith('raw clone'))
    assert {'glance', 'clone', 'resize'} <= set(raw['fastrbd']['seconds'])
    first = next(v for k, v in scenarios.items() if 'first' in k)
    assert {'download', 'inspect', 'convert', 'publish'} <= set(
        first['fastrbd']['first_seconds'])
    life = results['lifecycle']
    assert life['bases'] == 20 and life['deleted_images'] == 2
    # at least its own two deleted images' bases
    assert life['first']['retired'] >= 2 and life['first']['removed'] >= 2
    assert life['steady']['retired'] == life['steady']['removed'] == 0
    assert life['first']['rados_ops'] > 0 and life['first']['seconds'] > 0
    assert life['first']['glance_gets'] >= 20
    md = (tmp_path / 'results.md').read_text()
    assert '## targets' in md and '| fastrbd |' in md
    assert '## lifecycle pass: 20 bases' in md
    assert '## boot storm: 12 disks on 2 hosts' in md
    assert '## first qcow2 disk: seconds per step' in md
    assert '## raw clone path: ms per disk' in md
    assert (tmp_path / 'storm.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert (tmp_path / 'results.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
