"""benchmarks/report.py: merging, percentiles, targets, README section."""

import docutils.core
import pytest

from benchmarks import report


def _m(backend, times, wall, first=None, **kw):
    metrics = {'backend': backend, 'first_ms': first, 'times_ms': times,
               'wall_s': wall, 'failures': 0, 'errors': [],
               'downloaded_bytes': 0, 'conversions': 0, 'imports': 0,
               'ceph_allocated_bytes': 0, 'local_disk_bytes': 0,
               'baseline_rss_mib': 150.0, 'peak_rss_mib': 170.0,
               'peak_child_rss_mib': 100.0}
    metrics.update(kw)
    return metrics


def _results():
    three = ('rbd', 'qcow2', 'fastrbd')
    return {
        'config': {'raw_mib': 1024, 'big_mib': 8192},
        'machine': {'date': '2026-11-21', 'cpus': 2, 'memory_gib': 23.5,
                    'python': '3.11.7', 'ceph': 'lab'},
        'limits': {'clone_primitive_ms': 20.0, 'rbd_import_raw_s': 1.8,
                   'qemu_img_convert_to_rbd_s': 1.2,
                   'glance_download_qcow2_s': 0.8,
                   'clones_concurrent_16_threads_s': 0.5},
        'scenarios': {
            'raw: 50 sequential': {b: _m(b, [25.0, 30.0, 28.0], 1.0)
                                   for b in three},
            'raw: 100 concurrent': {b: _m(b, [40.0], 1.0) for b in three},
            'qcow2: first + 50': {
                'rbd': _m('rbd', [2000.0], 100.0, 5000.0),
                'qcow2': _m('qcow2', [100.0], 5.0, 3000.0),
                'fastrbd': _m('fastrbd', [30.0], 2.0, 2400.0)},
            'qcow2: 2 hosts x 25': {
                'rbd': _m('rbd', [1.0], 9.0, conversions=2, imports=50),
                'qcow2': _m('qcow2', [1.0], 9.0, conversions=2),
                'fastrbd': _m('fastrbd', [1.0], 1.0, conversions=1)},
            'raw clone: 1024 MiB': {b: _m(b, [28.0], 1.0)
                                    for b in ('rbd', 'fastrbd')},
            'raw clone: 8192 MiB': {b: _m(b, [30.0], 1.0)
                                    for b in ('rbd', 'fastrbd')},
        }}


def test_percentile():
    assert report.percentile([3, 1, 2], 50) == 2
    assert report.percentile(list(range(1, 101)), 95) == 95
    assert report.percentile([], 50) is None


def test_merge_sums_and_keeps_peaks():
    merged = report.merge([_m('rbd', [1.0], 2.0, 10.0, imports=3),
                           _m('rbd', [2.0], 3.0, None, imports=4,
                              peak_rss_mib=300.0)])
    assert merged['times_ms'] == [1.0, 2.0]
    assert merged['first_ms'] == [10.0]
    assert merged['imports'] == 7 and merged['wall_s'] == 5.0
    assert merged['peak_rss_mib'] == 300.0


def test_targets_are_ratios_of_this_run():
    results = _results()
    got = {t['target']: t for t in report.targets(results)}
    clone = got['raw clone path p50 / librbd clone']
    assert clone['measured'] == pytest.approx(28.0 / 20.0) and clone['met']
    size = got['big / small image clone p50']
    assert size['measured'] == pytest.approx(30.0 / 28.0) and size['met']
    speed = got['qcow2 disks after the first: stock Rbd / fastrbd time']
    assert speed['measured'] == pytest.approx(50.0) and speed['met']
    burst = got['1 concurrent spawns of one image, one host / as many '
                'librbd clones, 16 threads']
    assert burst['measured'] == pytest.approx(2.0) and burst['met']
    first = got['first qcow2 disk / (download + convert limit)']
    assert first['measured'] == pytest.approx(2.4 / 2.0)
    assert got['two hosts: conversions cluster-wide (fastrbd)']['met']
    assert 'stock Rbd: 2 conversions, 50 full imports' in got[
        'two hosts: conversions cluster-wide (fastrbd)']['note']


def test_missed_target_is_reported_not_hidden():
    results = _results()
    results['limits']['clone_primitive_ms'] = 10.0
    got = {t['target']: t for t in report.targets(results)}
    assert not got['raw clone path p50 / librbd clone']['met']
    results['targets'] = report.targets(results)
    assert '| NO |' in report.markdown(results)


def test_readme_section_replaced_between_markers(tmp_path):
    results = _results()
    results['targets'] = report.targets(results)
    readme = tmp_path / 'README.rst'
    readme.write_text('Title\n=====\n\n%s\n\nold\n\n%s\n\nAfter\n'
                      % (report.BEGIN, report.END))
    report.update_readme(str(readme), report.rst(results, 'chart.png'))
    text = readme.read_text()
    assert 'old' not in text and text.endswith('\n\nAfter\n')
    assert '.. image:: chart.png' in text
    assert '.. list-table:: targets' in text
    docutils.core.publish_doctree(text, settings_overrides={
        'report_level': 2, 'halt_level': 2})  # valid RST, no warning


def test_readme_without_markers_is_an_error(tmp_path):
    readme = tmp_path / 'README.rst'
    readme.write_text('no markers\n')
    with pytest.raises(ValueError):
        report.update_readme(str(readme), 'x')


def test_lifecycle_pass_table():
    results = _results()
    results['targets'] = report.targets(results)
    results['lifecycle'] = {
        'bases': 1000, 'deleted_images': 100, 'with_clones': 100,
        'first': {'seconds': 20.0, 'rados_ops': 30000, 'glance_gets': 1000,
                  'retired': 100, 'removed': 100},
        'steady': {'seconds': 15.0, 'rados_ops': 25000, 'glance_gets': 900,
                   'retired': 0, 'removed': 0}}
    md = report.markdown(results)
    assert ('## lifecycle pass: 1000 bases (100 of deleted images, 100 '
            'with a clone)') in md
    assert '| first (with work) | 20 | 30000 | 30 | 1000 | 100 | 100 |' in md
    assert '| steady state | 15 | 25000 | 25 | 900 | 0 | 0 |' in md


def test_p99_over_three_times_the_primitive_misses_the_target():
    results = _results()
    results['scenarios']['raw: 50 sequential']['fastrbd']['times_ms'] = [
        25.0] * 98 + [61.0, 61.0]
    got = {t['target']: t for t in report.targets(results)}
    clone = got['raw clone path p50 / librbd clone']
    assert clone['measured'] == pytest.approx(25.0 / 20.0)
    assert not clone['met']
    assert 'p99 61.0 ms (3.0x)' in clone['note']


def test_stage_tables_show_where_the_time_goes():
    results = _results()
    results['targets'] = report.targets(results)
    raw = results['scenarios']['raw clone: 1024 MiB']['fastrbd']
    raw['seconds'] = {'glance': 0.005, 'snapshot facts': 0.001,
                      'clone': 0.02, 'resize': 0.002}
    first = results['scenarios']['qcow2: first + 50']['fastrbd']
    first['first_seconds'] = {'download': 1.5, 'inspect': 0.1,
                              'convert': 0.6, 'publish': 0.05}
    md = report.markdown(results)
    assert '## raw clone path: ms per disk, mean of 1 disks (p50 28 ms)' in md
    assert '| clone | 20 |' in md and '| resize | 2.00 |' in md
    assert '| other (Nova, Python) | 0.00 |' in md
    assert '## first qcow2 disk: seconds per step (2.40 s in all)' in md
    assert '| download | 1.50 | 0.80 |' in md
    assert '| publish | 0.05 | - |' in md


def test_storm_table():
    results = _results()
    results['targets'] = report.targets(results)
    results['storm'] = {'disks': 500, 'threads': 32, 'image_mib': 256}
    for backend, wall in (('rbd', 90.0), ('fastrbd', 9.0)):
        results['storm'][backend] = _m(backend, [10.0] * 98 + [500.0] * 2,
                                       wall,
                                       downloads=4, conversions=1)
    md = report.markdown(results)
    assert '## boot storm: 500 disks on 2 hosts, 32 at a time per host' in md
    assert '| rbd | 90 | 10 | 500 | 0 | 0.00 | 4 | 1 | 0 |' in md


def test_clone_and_resize_floor_in_the_notes():
    results = _results()
    results['limits']['clone_and_resize_primitive_ms'] = 35.0
    results['limits']['clones_and_resizes_concurrent_16_threads_s'] = 0.8
    got = {t['target']: t for t in report.targets(results)}
    assert ('clone + resize to the root disk alone: 35.00 ms (0.8x)'
            in got['raw clone path p50 / librbd clone']['note'])
    burst = [t for name, t in got.items() if 'concurrent spawns' in name]
    assert 'clone + resize to the root disk alone: 0.80 s (1.2x)' in \
        burst[0]['note']
