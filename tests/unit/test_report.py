"""benchmarks/report.py: merging, percentiles, targets, README section."""

import json

import docutils.core
import pytest

from benchmarks import report

MiB = 1 << 20


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
                    'python': '3.11.7'},
        'lab': {'osds': 1, 'pool_size': 1, 'pool_min_size': 1},
        'limits': {'clone_primitive_ms': 20.0, 'rbd_import_raw_s': 1.8,
                   'clone_and_resize_primitive_ms': 18.0,
                   'glance_get_ms': 4.0, 'root_disk_primitive_ms': 23.0,
                   'qemu_img_convert_to_rbd_s': 1.2,
                   'glance_download_qcow2_s': 0.8,
                   'clones_concurrent_16_threads_s': 0.5,
                   'clones_and_resizes_concurrent_16_threads_s': 0.8},
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


RAW = ('raw root disk p50 / its primitive (Glance GET with locations + '
       'librbd clone + resize)')
BURST = ('1 concurrent spawns of one image, one host / 1 librbd clones + '
         'resizes, 16 threads')


def test_targets_are_ratios_of_this_run():
    results = _results()
    got = {t['target']: t for t in report.targets(results)}
    clone = got[RAW]
    assert clone['measured'] == pytest.approx(28.0 / 23.0) and not \
        clone['met']  # 1.22x > 1.2
    assert ('p50 28.0 ms, p99 30.0 ms (1.3x) / 23.0 ms (Glance GET 4.0 ms; '
            'clone + resize alone 18.0 ms, clone alone 20.0 ms)'
            == clone['note'])
    size = got['big / small image clone p50']
    assert size['measured'] == pytest.approx(30.0 / 28.0) and size['met']
    speed = got['qcow2 disks after the first: stock Rbd / fastrbd time']
    assert speed['measured'] == pytest.approx(50.0) and speed['met']
    burst = got[BURST]
    assert burst['measured'] == pytest.approx(1.0 / 0.8) and burst['met']
    first = got['first qcow2 disk / (download + convert limit)']
    assert first['measured'] == pytest.approx(2.4 / 2.0)
    assert got['two hosts: conversions cluster-wide (fastrbd)']['met']
    assert 'stock Rbd: 2 conversions, 50 full imports' in got[
        'two hosts: conversions cluster-wide (fastrbd)']['note']


def test_raw_root_disk_within_its_primitive_meets_the_target():
    results = _results()
    results['limits']['root_disk_primitive_ms'] = 25.0
    got = {t['target']: t for t in report.targets(results)}
    assert got[RAW]['met']
    results['limits']['clones_and_resizes_concurrent_16_threads_s'] = 0.7
    burst = {t['target']: t for t in report.targets(results)}[BURST]
    assert burst['measured'] == pytest.approx(1 / 0.7) and not burst['met']


def test_missed_target_is_reported_not_hidden():
    results = _results()
    results['limits']['root_disk_primitive_ms'] = 10.0
    got = {t['target']: t for t in report.targets(results)}
    assert not got[RAW]['met']
    results['targets'] = report.targets(results)
    assert '| NO |' in report.markdown(results)


def _two_shapes():
    one = _results()
    one['targets'] = report.targets(one)
    three = _results()
    three['lab'] = {'osds': 3, 'pool_size': 3, 'pool_min_size': 2}
    three['targets'] = report.targets(three)
    return one, three


def test_shape_names_the_files_and_the_label():
    one, three = _two_shapes()
    assert report.shape_suffix(one) == ''
    assert report.files(one)['json'] == 'results.json'
    assert report.shape_label(one) == '1 OSD, pools of size 1'
    assert report.shape_suffix(three) == '-3osd'
    three['storm'] = {}
    assert report.files(three) == {
        'json': 'results-3osd.json', 'md': 'results-3osd.md',
        'chart': 'results-3osd.png', 'storm': 'storm-3osd.png'}
    assert report.shape_label(three) == \
        '3 OSDs, pools of size 3 (min_size 2)'
    old = _results()
    del old['lab']  # a run from before the lab had shapes: one OSD
    assert report.shape_suffix(old) == ''


def test_readme_section_replaced_between_markers(tmp_path):
    one, three = _two_shapes()
    readme = tmp_path / 'README.rst'
    readme.write_text('Title\n=====\n\n%s\n\nold\n\n%s\n\nAfter\n'
                      % (report.BEGIN, report.END))
    report.update_readme(str(readme), report.rst(
        [(one, ['chart.png']), (three, ['chart-3osd.png', 'f.png'])]))
    text = readme.read_text()
    assert 'old' not in text and text.endswith('\n\nAfter\n')
    assert '.. image:: chart.png' in text
    assert '.. image:: chart-3osd.png' in text and '.. image:: f.png' in text
    assert '.. list-table:: targets, 1 OSD, pools of size 1\n' in text
    assert ('.. list-table:: targets, 3 OSDs, pools of size 3 (min_size 2)\n'
            in text)
    assert text.index('1 OSD, pools') < text.index('3 OSDs, pools')
    docutils.core.publish_doctree(text, settings_overrides={
        'report_level': 2, 'halt_level': 2})  # valid RST, no warning


def _write_shape(results, out):
    with open(out / report.files(results)['json'], 'w') as f:
        json.dump(results, f)


def test_readme_keeps_targets_and_charts_doc_gets_every_table(tmp_path):
    one, three = _two_shapes()
    (tmp_path / 'doc' / 'source').mkdir(parents=True)
    out = tmp_path / 'benchmarks' / 'results'
    out.mkdir(parents=True)
    # the 3-OSD run wrote its results earlier; the 1-OSD run writes now
    _write_shape(three, out)
    (out / 'results-junk.json').write_text('{"lab": {"osds": 9}}')
    _write_shape(one, out)
    readme = tmp_path / 'README.rst'
    readme.write_text('T\n=\n\n%s\n%s\n' % (report.BEGIN, report.END))
    report._write_docs(str(out), str(readme))
    section = readme.read_text()
    page = (tmp_path / report.DOC).read_text()
    titles = [title for title, _h, _r in report.tables(one)]
    assert len(titles) > 3
    for title in titles:
        if title == 'targets':
            continue
        assert '.. list-table:: %s\n' % title not in section, title
        assert page.count('.. list-table:: %s\n' % title) == 2, title
    assert section.count('.. list-table:: targets, ') == 2
    assert page.count('.. list-table:: targets\n') == 2
    assert '.. image:: benchmarks/results/results.png' in section
    assert '.. image:: benchmarks/results/results-3osd.png' in section
    assert '.. image:: ../../benchmarks/results/results.png' in page
    assert '.. image:: ../../benchmarks/results/results-3osd.png' in page
    assert 'Lab: 1 OSD, pools of size 1\n---' in page
    assert 'Lab: 3 OSDs, pools of size 3 (min_size 2)\n---' in page
    assert report.DOC in section
    for text in (section, page):
        docutils.core.publish_doctree(text, settings_overrides={
            'report_level': 2, 'halt_level': 2})


def test_write_names_files_after_the_shape(tmp_path):
    _one, three = _two_shapes()
    three['fleet'] = _many(3, 8, 25)
    report.write(three, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'fleet-3osd.png', 'results-3osd.json', 'results-3osd.md',
        'results-3osd.png']
    assert [r['lab']['osds'] for r in report.load_shapes(str(tmp_path))] \
        == [3]


def test_readme_without_markers_is_an_error(tmp_path):
    readme = tmp_path / 'README.rst'
    readme.write_text('no markers\n')
    with pytest.raises(ValueError):
        report.update_readme(str(readme), 'x')


def _lifecycle(steady_s=8.0, steady_ops=15000, requests=40):
    return {
        'bases': 10000, 'deleted_images': 1000, 'with_clones': 1000,
        'first': {'seconds': 20.0, 'rados_ops': 30000, 'glance_gets': 1000,
                  'glance_requests': 1010, 'retired': 1000,
                  'removed': 1000, 'opened': 1000},
        'steady': {'seconds': steady_s, 'rados_ops': steady_ops,
                   'glance_gets': 30, 'glance_requests': requests,
                   'retired': 0, 'removed': 0, 'opened': 0},
        'unindexed': {'seconds': 90.0, 'rados_ops': 170000,
                      'glance_gets': 30, 'glance_requests': requests,
                      'retired': 0, 'removed': 0, 'opened': 9000}}


def test_lifecycle_pass_table():
    results = _results()
    results['lifecycle'] = _lifecycle()
    results['targets'] = report.targets(results)
    md = report.markdown(results)
    assert ('## lifecycle pass: 10000 bases (1000 of deleted images, 1000 '
            'with a clone)') in md
    assert ('| first (with work) | 20 | 30000 | 3.00 | 1010 | 1000 | 1000 '
            '| 1000 | 1000 |') in md
    assert ('| steady state | 8.00 | 15000 | 1.50 | 40 | 30 | 0 | 0 | 0 |'
            in md)
    assert ('| without the base index (upgrade) | 90 | 170000 | 17 | 40 | 30 '
            '| 9000 | 0 | 0 |') in md


def test_lifecycle_pass_table_of_an_earlier_run():
    # results from before the base index: two passes, nothing opened
    results = _results()
    results['lifecycle'] = _lifecycle()
    del results['lifecycle']['unindexed']
    for which in ('first', 'steady'):
        del results['lifecycle'][which]['opened']
    results['targets'] = report.targets(results)
    md = report.markdown(results)
    assert '| steady state | 8.00 | 15000 | 1.50 | 40 | 30 | - | 0 | 0 |' \
        in md
    assert 'without the base index' not in md


def test_lifecycle_targets():
    results = _results()
    results['lifecycle'] = _lifecycle()
    name = ('lifecycle pass over 10000 bases (1000 of deleted images, 1000 '
            'with clones), steady state: ')
    got = {t['target']: t for t in report.targets(results)}
    assert got[name + 'seconds']['met']
    assert got[name + 'RADOS ops per base']['measured'] == 1.5
    assert got[name + 'RADOS ops per base']['met']
    assert got[name + 'Glance requests']['met']
    assert got[name + 'Glance requests']['note'] == \
        'of which GETs 30; first pass: 1010'
    results['lifecycle'] = _lifecycle(steady_s=12.0, steady_ops=25000,
                                      requests=9000)
    got = {t['target']: t for t in report.targets(results)}
    for what in ('seconds', 'RADOS ops per base', 'Glance requests'):
        assert not got[name + what]['met'], what


def test_p99_over_two_and_a_half_times_the_primitive_misses_the_target():
    results = _results()
    results['scenarios']['raw: 50 sequential']['fastrbd']['times_ms'] = [
        25.0] * 98 + [58.0, 58.0]
    results['limits']['root_disk_primitive_ms'] = 23.0
    got = {t['target']: t for t in report.targets(results)}
    clone = got[RAW]
    assert clone['measured'] == pytest.approx(25.0 / 23.0)
    assert not clone['met']
    assert 'p99 58.0 ms (2.5x)' in clone['note']


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


MIX = ['raw (rbd store)', 'qcow2', 'raw (file store)']


def _many(hosts, per_host, threads, rbd_wall=90.0, fast_wall=5.0,
          fast_downloads=(0, 1, 1), conversions=1, failures=0):
    data = {'hosts': hosts, 'per_host': per_host,
            'disks': hosts * per_host, 'threads': threads, 'image_mib': 256,
            'images': MIX}
    data['rbd'] = _m('rbd', [10.0] * 98 + [500.0] * 2, rbd_wall,
                     downloads=2 * hosts, conversions=hosts, imports=133,
                     downloads_by_image=dict(zip(MIX, (0, hosts, hosts))),
                     ceph_allocated_bytes=300 * MiB,
                     osd_written_bytes=900 * MiB)
    data['fastrbd'] = _m('fastrbd', [100.0] * 100, fast_wall,
                         downloads=sum(fast_downloads),
                         conversions=conversions, failures=failures,
                         downloads_by_image=dict(zip(MIX, fast_downloads)))
    return data


def test_storm_table_and_targets():
    results = _results()
    results['storm'] = _many(2, 250, 32)
    results['targets'] = report.targets(results)
    md = report.markdown(results)
    assert ('## boot storm: 500 disks on 2 hosts, 32 at a time per host, '
            'images raw (rbd store), qcow2, raw (file store) of 256 MiB') \
        in md
    assert ('| rbd | 90 | 10 | 500 | 0 | 300 | 900 | 4 | 0 / 2 / 2 | 2 | 133 '
            '| 18 |') in md
    assert '| fastrbd | 5.00 | 100 | 100 | 0 | 0.00 | - | 2 | 0 / 1 / 1 |' \
        in md
    got = {t['target']: t for t in results['targets']}
    name = 'boot storm (500 disks, 2 hosts): '
    assert got[name + 'stock Rbd / fastrbd total time']['measured'] == 18
    assert got[name + 'stock Rbd / fastrbd total time']['met']
    assert got[name + 'fastrbd p50, s']['measured'] == pytest.approx(0.1)
    assert got[name + 'fastrbd p50, s']['met']
    assert got[name + 'failures (fastrbd)']['met']
    results['storm'] = _many(2, 250, 32, rbd_wall=60.0, failures=1)
    got = {t['target']: t for t in report.targets(results)}
    assert not got[name + 'stock Rbd / fastrbd total time']['met']
    assert not got[name + 'failures (fastrbd)']['met']


FLEET = ('fleet (8 hosts x 25 at once, cold cache): downloads per image '
         'cluster-wide (fastrbd)')


def test_fleet_table_and_target():
    results = _results()
    results['fleet'] = _many(8, 25, 25)
    results['targets'] = report.targets(results)
    md = report.markdown(results)
    assert ('## fleet: 8 hosts spawning at once from a cold cache, 25 disks '
            'each, all at once; images raw (rbd store), qcow2, raw (file '
            'store) of 256 MiB') in md
    assert '| rbd | 90 | 10 | 500 | 0 | 300 | 900 | 16 | 0 / 8 / 8 | 8 |' \
        in md
    target = {t['target']: t for t in results['targets']}[FLEET]
    assert target['met'] and target['measured'] == 1
    assert target['note'] == (
        'downloads raw (rbd store) 0, qcow2 1, raw (file store) 1; '
        'conversions 1; failures 0 of 200; stock Rbd: 16 downloads, 8 '
        'conversions, 133 full copies, 90.0 s / 5.0 s')


@pytest.mark.parametrize('kwargs', [
    {'fast_downloads': (0, 2, 1)}, {'fast_downloads': (0, 1, 0)},
    {'conversions': 2}, {'failures': 3}])
def test_fleet_target_missed(kwargs):
    results = _results()
    results['fleet'] = _many(8, 25, 25, **kwargs)
    target = {t['target']: t for t in report.targets(results)}[FLEET]
    assert not target['met']


def test_qcow2_target_shows_ceph_written_for_both():
    results = _results()
    q = results['scenarios']['qcow2: first + 50']
    q['rbd'].update(ceph_allocated_bytes=26112 * MiB,
                    osd_written_bytes=3 * 26112 * MiB)
    q['fastrbd'].update(ceph_allocated_bytes=512 * MiB,
                        osd_written_bytes=1540 * MiB)
    got = {t['target']: t for t in report.targets(results)}
    note = got['qcow2 disks after the first: stock Rbd / fastrbd time'][
        'note']
    assert note == ('100.0 s / 2.0 s; Ceph written: stock Rbd 26112 MiB (OSD '
                    'writes 78336 MiB), fastrbd 512 MiB (OSD writes 1540 '
                    'MiB)')


def test_a_run_of_some_parts_has_only_their_targets():
    results = _results()
    results['scenarios'] = {}
    assert report.targets(results) == []
    results['fleet'] = _many(8, 25, 25)
    assert [t['target'] for t in report.targets(results)] == [FLEET]
