"""Benchmark results: merge runs, check targets, write JSON/markdown/PNG.

Pure functions on the results dict of benchmarks/run.py (plus the writers),
so the report can be tested and regenerated without the lab.

A run measures one lab shape (results['lab']: OSDs and replicas); its files
are results<suffix>.* (:func:`shape_suffix`), and the README and the doc
page show every shape whose results are in the directory.
"""

import glob
import json
import os
import statistics

MiB = 1 << 20
# 'Ceph written': what the disks (and bases) a run made hold, one copy;
# 'OSD writes': what the OSDs wrote meanwhile, every replica counted
COLUMNS = ('total s', 'first ms', 'p50 ms', 'p95 ms', 'failures',
           'Ceph written MiB', 'OSD writes MiB', 'downloaded MiB',
           'local disk MiB', 'peak RSS MiB', 'conversions', 'imports',
           'x fastrbd total')
BEGIN = '.. BEGIN PERFORMANCE (written by benchmarks/run.py --readme)'
END = '.. END PERFORMANCE'
# every table of a run, beside the README (relative to its directory)
DOC = 'doc/source/performance.rst'


def merge(runs: list) -> dict:
    """Several worker results as one (repeats, or several hosts)."""
    def total(key):
        return sum(r[key] for r in runs)
    return {
        'backend': runs[0]['backend'], 'runs': len(runs),
        'first_ms': [r['first_ms'] for r in runs
                     if r.get('first_ms') is not None],
        'times_ms': [t for r in runs for t in r['times_ms']],
        'wall_s': total('wall_s'), 'failures': total('failures'),
        'errors': [e for r in runs for e in r['errors']][:5],
        'downloaded_bytes': total('downloaded_bytes'),
        'downloads': sum(r.get('downloads', 0) for r in runs),
        'downloads_by_image': _sum_dicts([r.get('downloads_by_image', {})
                                          for r in runs]),
        'osd_written_bytes': sum(r.get('osd_written_bytes', 0)
                                 for r in runs),
        'seconds': _sum_dicts([r.get('seconds', {}) for r in runs]),
        'first_seconds': runs[0].get('first_seconds', {}),
        'conversions': total('conversions'), 'imports': total('imports'),
        'ceph_allocated_bytes': total('ceph_allocated_bytes'),
        'local_disk_bytes': total('local_disk_bytes'),
        'baseline_rss_mib': max(r['baseline_rss_mib'] for r in runs),
        'peak_rss_mib': max(r['peak_rss_mib'] for r in runs),
        'peak_child_rss_mib': max(r['peak_child_rss_mib'] for r in runs),
    }


def _sum_dicts(dicts: list) -> dict:
    out = {}
    for d in dicts:
        for key, value in d.items():
            out[key] = out.get(key, 0) + value
    return out


def percentile(values: list, pct: float):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def first_ms(metrics: dict):
    first = metrics.get('first_ms')
    if isinstance(first, list):
        return statistics.median(first) if first else None
    return first


def _mib(metrics: dict, key: str):
    value = metrics.get(key)
    return None if value is None else value / MiB


def row(metrics: dict, fastrbd: dict) -> list:
    times = metrics['times_ms']
    ratio = (metrics['wall_s'] / fastrbd['wall_s']
             if fastrbd and fastrbd['wall_s'] else None)
    return [metrics['wall_s'], first_ms(metrics), percentile(times, 50),
            percentile(times, 95),
            metrics['failures'], metrics['ceph_allocated_bytes'] / MiB,
            _mib(metrics, 'osd_written_bytes'),
            metrics['downloaded_bytes'] / MiB,
            metrics['local_disk_bytes'] / MiB, metrics['peak_rss_mib'],
            metrics['conversions'], metrics['imports'], ratio]


def _target(name, measured, goal, met, note=''):
    return {'target': name, 'measured': measured, 'goal': goal,
            'met': bool(met), 'note': note}


def _scenario(results, prefix, word=''):
    for name, by_backend in results['scenarios'].items():
        if name.startswith(prefix) and word in name:
            return by_backend
    raise KeyError(prefix + word)


def _ran(results, prefix, word='') -> bool:
    """Whether the run had that scenario (a run --only some parts)."""
    try:
        _scenario(results, prefix, word)
    except KeyError:
        return False
    return True


def targets(results: dict) -> list:
    """The issue's targets, each as a ratio measured in this run.

    A part the run left out (--only) has no rows; a full run has them all.
    """
    out = []
    for part in (_raw_targets, _storm_targets, _fleet_targets,
                 _lifecycle_targets, _qcow2_targets, _size_targets,
                 _rss_targets):
        out += part(results)
    return out


def _raw_targets(results: dict) -> list:
    if not _ran(results, 'raw: ', 'sequential'):
        return []
    lim = results['limits']
    seq = _scenario(results, 'raw: ', 'sequential')['fastrbd']['times_ms']
    p50, p99 = percentile(seq, 50), percentile(seq, 99)
    prim = lim['root_disk_primitive_ms']
    conc = _scenario(results, 'raw: ', 'concurrent')['fastrbd']
    floor = lim['clones_and_resizes_concurrent_16_threads_s']
    burst = conc['wall_s'] / floor
    n = len(conc['times_ms'])
    return [
        _target('raw root disk p50 / its primitive (Glance GET with '
                'locations + librbd clone + resize)', p50 / prim,
                '<= 1.2 (p99 <= 2.5)', p50 / prim <= 1.2 and
                p99 / prim <= 2.5, 'p50 %.1f ms, p99 %.1f ms (%.1fx) / '
                '%.1f ms (Glance GET %.1f ms; clone + resize alone %.1f ms, '
                'clone alone %.1f ms)' % (
                    p50, p99, p99 / prim, prim, lim['glance_get_ms'],
                    lim['clone_and_resize_primitive_ms'],
                    lim['clone_primitive_ms'])),
        _target('%d concurrent spawns of one image, one host / %d librbd '
                'clones + resizes, 16 threads' % (n, n), burst, '<= 1.3',
                burst <= 1.3, '%.2f s / %.2f s (clones alone %.2f s)' % (
                    conc['wall_s'], floor,
                    lim['clones_concurrent_16_threads_s'])),
        _target('concurrent disks: failures (fastrbd)', conc['failures'],
                '== 0', conc['failures'] == 0, 'of %d' % n),
    ]


def _storm_targets(results: dict) -> list:
    storm = results.get('storm')
    if not storm:
        return []
    rbd, fast = storm['rbd'], storm['fastrbd']
    speedup = rbd['wall_s'] / fast['wall_s']
    p50 = percentile(fast['times_ms'], 50) / 1000
    name = 'boot storm (%d disks, %d hosts)' % (storm['disks'],
                                                storm.get('hosts', 2))
    return [
        _target(name + ': stock Rbd / fastrbd total time', speedup, '>= 15',
                speedup >= 15, '%.1f s / %.1f s' % (rbd['wall_s'],
                                                    fast['wall_s'])),
        _target(name + ': fastrbd p50, s', p50, '<= 0.3', p50 <= 0.3,
                'p99 %.2f s; stock Rbd p50 %.2f s' % (
                    percentile(fast['times_ms'], 99) / 1000,
                    percentile(rbd['times_ms'], 50) / 1000)),
        _target(name + ': failures (fastrbd)', fast['failures'], '== 0',
                fast['failures'] == 0, 'of %d; stock Rbd: %d' % (
                    storm['disks'], rbd['failures'])),
    ]


def _fleet_targets(results: dict) -> list:
    fleet = results.get('fleet')
    if not fleet:
        return []
    fast, rbd = fleet['fastrbd'], fleet['rbd']
    by_image = fast['downloads_by_image']
    # the raw image in the rbd store is cloned: nothing to download
    fetched = [label for label in fleet['images'] if 'rbd store' not in label]
    met = (all(by_image[label] == 1 for label in fetched) and
           by_image.get('raw (rbd store)', 0) == 0 and
           fast['conversions'] == 1 and fast['failures'] == 0)
    return [_target(
        'fleet (%d hosts x %d at once, cold cache): downloads per image '
        'cluster-wide (fastrbd)' % (fleet['hosts'], fleet['per_host']),
        max(by_image.values()), '== 1 (and 1 conversion, 0 failures)', met,
        'downloads %s; conversions %d; failures %d of %d; stock Rbd: %d '
        'downloads, %d conversions, %d full copies, %.1f s / %.1f s' % (
            ', '.join('%s %d' % (label, by_image[label])
                      for label in fleet['images']),
            fast['conversions'], fast['failures'], fleet['disks'],
            rbd['downloads'], rbd['conversions'], rbd['imports'],
            rbd['wall_s'], fast['wall_s']))]


def _lifecycle_targets(results: dict) -> list:
    life = results.get('lifecycle')
    if not life:
        return []
    steady, first = life['steady'], life['first']
    name = 'lifecycle pass over %d bases (%d of deleted images, %d with ' \
        'clones), steady state' % (life['bases'], life['deleted_images'],
                                   life['with_clones'])
    per_base = steady['rados_ops'] / life['bases']
    requests = steady['glance_requests']
    return [
        _target(name + ': seconds', steady['seconds'], '<= 10',
                steady['seconds'] <= 10, 'first pass (with work): %.1f s' %
                first['seconds']),
        _target(name + ': RADOS ops per base', per_base, '<= 2',
                per_base <= 2, '%d ops; first pass: %d' % (
                    steady['rados_ops'], first['rados_ops'])),
        _target(name + ': Glance requests', requests, '<= 100',
                requests <= 100, 'of which GETs %d; first pass: %d' % (
                    steady['glance_gets'], first['glance_requests'])),
    ]


def _written(metrics: dict) -> str:
    osd = _mib(metrics, 'osd_written_bytes')
    return '%.0f MiB%s' % (metrics['ceph_allocated_bytes'] / MiB,
                           '' if osd is None else
                           ' (OSD writes %.0f MiB)' % osd)


def _qcow2_targets(results: dict) -> list:
    out = []
    if _ran(results, 'qcow2: first'):
        lim = results['limits']
        q50 = _scenario(results, 'qcow2: first')
        speedup = q50['rbd']['wall_s'] / q50['fastrbd']['wall_s']
        first = first_ms(q50['fastrbd']) / 1000
        limit = (lim['glance_download_qcow2_s'] +
                 lim['qemu_img_convert_to_rbd_s'])
        out += [
            _target('qcow2 disks after the first: stock Rbd / fastrbd time',
                    speedup, '>= 20', speedup >= 20,
                    '%.1f s / %.1f s; Ceph written: stock Rbd %s, fastrbd '
                    '%s' % (q50['rbd']['wall_s'], q50['fastrbd']['wall_s'],
                            _written(q50['rbd']), _written(q50['fastrbd']))),
            _target('first qcow2 disk / (download + convert limit)',
                    first / limit, '<= 1.3', first / limit <= 1.3,
                    '%.2f s / %.2f s' % (first, limit))]
    if _ran(results, 'qcow2: 2 hosts'):
        two = _scenario(results, 'qcow2: 2 hosts')
        out.append(_target(
            'two hosts: conversions cluster-wide (fastrbd)',
            two['fastrbd']['conversions'], '== 1',
            two['fastrbd']['conversions'] == 1,
            'stock Rbd: %d conversions, %d full imports' % (
                two['rbd']['conversions'], two['rbd']['imports'])))
    return out


def _size_targets(results: dict) -> list:
    cfg = results['config']
    if not _ran(results, 'raw clone: %d MiB' % cfg['big_mib']):
        return []
    small, big = (percentile(_scenario(results, 'raw clone: %d MiB' % mib)[
        'fastrbd']['times_ms'], 50) for mib in (cfg['raw_mib'],
                                                cfg['big_mib']))
    return [_target('big / small image clone p50', big / small, '<= 1.2',
                    big / small <= 1.2, '%.1f ms / %.1f ms' % (big, small))]


def _rss_targets(results: dict) -> list:
    if not _ran(results, 'qcow2: first'):
        return []
    q50 = _scenario(results, 'qcow2: first')['fastrbd']
    rss = q50['peak_rss_mib']
    return [_target('peak RSS of the fetch path, MiB (fastrbd process)', rss,
                    '<= 200', rss <= 200, 'of which %.0f MiB is the process '
                    'before the first disk (Nova imported); qemu-img peak '
                    '%.0f MiB' % (q50['baseline_rss_mib'],
                                  q50['peak_child_rss_mib']))]


def _fmt(value) -> str:
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'NO'
    if isinstance(value, float):
        return '%.2f' % value if abs(value) < 10 else '%.0f' % value
    return str(value)


def tables(results: dict) -> list:
    """[(title, header, rows)] for every scenario, the limits, targets."""
    out = []
    for name, by_backend in results['scenarios'].items():
        fast = by_backend.get('fastrbd')
        rows = [[backend] + [_fmt(v) for v in row(m, fast)]
                for backend, m in by_backend.items()]
        out.append((name, ['backend'] + list(COLUMNS), rows))
    out += stage_tables(results)
    if 'storm' in results:
        out.append(storm_table(results['storm']))
    if 'fleet' in results:
        out.append(fleet_table(results['fleet']))
    if 'lifecycle' in results:
        out.append(lifecycle_table(results['lifecycle']))
    lim = results['limits']
    out.append(('physical limits (same run)', ['limit', 'value'],
                [[k, _fmt(v)] for k, v in lim.items()]))
    out.append(('targets', ['target', 'measured', 'goal', 'met', 'detail'],
                [[t['target'], _fmt(float(t['measured'])), t['goal'],
                  _fmt(t['met']), t['note']] for t in results['targets']]))
    return out


# the steps cache.timed() measures, in the order a disk goes through them
RAW_STEPS = ('glance', 'snapshot facts', 'clone', 'resize')
FIRST_STEPS = ('glance', 'download', 'inspect', 'convert', 'import',
               'publish', 'clone', 'resize')


def stage_tables(results: dict) -> list:
    """Where a fastrbd disk's time goes, step by step (cache.SECONDS)."""
    out = []
    cfg = results['config']
    try:
        raw = _scenario(results, 'raw clone: %d MiB' % cfg['raw_mib'])[
            'fastrbd']
        first = _scenario(results, 'qcow2: first')['fastrbd']
    except KeyError:
        return out
    disks = len(raw['times_ms']) + len(raw.get('first_ms') or [])
    seconds = raw.get('seconds') or {}
    if disks and seconds:
        rows = [[step, _fmt(seconds.get(step, 0) * 1000 / disks)]
                for step in RAW_STEPS]
        p50 = percentile(raw['times_ms'], 50)
        rest = p50 - sum(seconds.get(k, 0) for k in RAW_STEPS) * 1000 / disks
        rows.append(['other (Nova, Python)', _fmt(max(0.0, rest))])
        rows.append(['librbd clone alone (limit)',
                     _fmt(results['limits']['clone_primitive_ms'])])
        out.append(('raw clone path: ms per disk, mean of %d disks (p50 '
                    '%s ms)' % (disks, _fmt(p50)), ['step', 'ms'], rows))
    steps = first.get('first_seconds') or {}
    if steps:
        lim = results['limits']
        limits = {'download': lim['glance_download_qcow2_s'],
                  'convert': lim['qemu_img_convert_to_rbd_s']}
        rows = [[step, _fmt(steps[step]), _fmt(limits.get(step))]
                for step in FIRST_STEPS if step in steps]
        out.append(('first qcow2 disk: seconds per step (%s s in all)'
                    % _fmt(first_ms(first) / 1000),
                    ['step', 'seconds', 'limit (same run)'], rows))
    return out


MANY_COLUMNS = ('total s', 'p50 ms', 'p99 ms', 'failures',
                'Ceph written MiB', 'OSD writes MiB', 'downloads',
                'downloads per image', 'conversions', 'imports',
                'x fastrbd total')
MIX = 'images raw (rbd store), qcow2, raw (file store)'


def _many_rows(data: dict) -> list:
    """Stock Rbd and fastrbd rows of a storm or a fleet."""
    rows = []
    for backend in ('rbd', 'fastrbd'):
        m = data[backend]
        by_image = m.get('downloads_by_image')
        per_image = (' / '.join(str(by_image.get(label, 0))
                                for label in data['images'])
                     if by_image and 'images' in data else None)
        rows.append([backend] + [_fmt(v) for v in (
            m['wall_s'], percentile(m['times_ms'], 50),
            percentile(m['times_ms'], 99), m['failures'],
            m['ceph_allocated_bytes'] / MiB, _mib(m, 'osd_written_bytes'),
            m['downloads'], per_image, m['conversions'], m['imports'],
            m['wall_s'] / data['fastrbd']['wall_s'])])
    return rows


def storm_table(storm: dict):
    title = ('boot storm: %d disks on %d hosts, %d at a time per host, '
             '%s of %d MiB' % (storm['disks'], storm.get('hosts', 2),
                               storm['threads'], MIX, storm['image_mib']))
    return title, ['backend'] + list(MANY_COLUMNS), _many_rows(storm)


def fleet_table(fleet: dict):
    title = ('fleet: %d hosts spawning at once from a cold cache, %d disks '
             'each, all at once; %s of %d MiB' % (
                 fleet['hosts'], fleet['per_host'], MIX,
                 fleet['image_mib']))
    return title, ['backend'] + list(MANY_COLUMNS), _many_rows(fleet)


def lifecycle_table(life: dict):
    """One lifecycle pass over many bases: time, RADOS and Glance."""
    title = ('lifecycle pass: %d bases (%d of deleted images, %d with a '
             'clone)' % (life['bases'], life['deleted_images'],
                         life['with_clones']))
    header = ['pass', 'seconds', 'RADOS ops', 'RADOS ops per base',
              'Glance requests', 'Glance GETs', 'bases opened', 'retired',
              'removed']
    rows = [[which, _fmt(p['seconds']), str(p['rados_ops']),
             _fmt(p['rados_ops'] / life['bases']),
             _fmt(p.get('glance_requests')), str(p['glance_gets']),
             _fmt(p.get('opened')), str(p['retired']), str(p['removed'])]
            for which, p in (('first (with work)', life['first']),
                             ('steady state', life['steady']),
                             ('without the base index (upgrade)',
                              life.get('unindexed')))
            if p is not None]
    return title, header, rows


def markdown(results: dict) -> str:
    lines = ['# fastclone-backend benchmark', '',
             'Machine: %s' % json.dumps(results['machine']), '']
    for title, header, rows in tables(results):
        lines += ['## ' + title, '', '| ' + ' | '.join(header) + ' |',
                  '|' + '---|' * len(header)]
        lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
        lines.append('')
    return '\n'.join(lines)


def shape(results: dict) -> dict:
    """The lab that measured it: OSDs and replicas (1 and 1 before 'lab')."""
    return results.get('lab') or {'osds': 1, 'pool_size': 1,
                                  'pool_min_size': 1}


def shape_suffix(results: dict) -> str:
    """'' for one OSD without replicas, else '-<N>osd' (file names)."""
    lab = shape(results)
    if lab['osds'] == 1 and lab['pool_size'] == 1:
        return ''
    return '-%dosd' % lab['osds']


def shape_label(results: dict) -> str:
    lab = shape(results)
    label = '%d OSD%s, pools of size %d' % (
        lab['osds'], 's' if lab['osds'] > 1 else '', lab['pool_size'])
    if lab['pool_size'] > 1:
        label += ' (min_size %d)' % lab['pool_min_size']
    return label


def files(results: dict) -> dict:
    """{what: file name} of this shape's results."""
    sfx = shape_suffix(results)
    names = {'json': 'results%s.json' % sfx, 'md': 'results%s.md' % sfx,
             'chart': 'results%s.png' % sfx}
    for part in ('storm', 'fleet'):
        if part in results:
            names[part] = '%s%s.png' % (part, sfx)
    return names


def charts(results: dict) -> list:
    """This shape's chart files, in the order the pages show them."""
    names = files(results)
    return [names[k] for k in ('chart', 'storm', 'fleet') if k in names]


def _measured_on(results: dict) -> str:
    machine = results['machine']
    # the shape is named beside it (shape_label)
    ceph = machine.get('ceph') or ('single-node Ceph (bluestore on sparse '
                                   'files, loopback; tools/lab)')
    return 'Measured %s on %s CPUs, %s GiB RAM, Python %s, %s.' % (
        machine['date'], machine['cpus'], machine['memory_gib'],
        machine['python'], ceph)


def _list_table(title: str, header: list, rows: list) -> list:
    lines = ['.. list-table:: %s' % title, '   :header-rows: 1', '']
    for cells in [header] + rows:
        lines.append('   * - ' + cells[0])
        lines += ['     - ' + (c or '-') for c in cells[1:]]
    return lines + ['']


def _images(paths: list) -> list:
    lines = []
    for path in paths:
        lines += ['.. image:: %s' % path, '']
    return lines


def rst(shapes: list) -> str:
    """The README's section: per lab shape, the targets and the charts.

    shapes: [(results, [chart paths as the README sees them])].  Every
    other table goes to :data:`DOC` (:func:`doc_page`).
    """
    lines = [BEGIN, '']
    for results, paths in shapes:
        lines += ['**Lab: %s.** %s' % (shape_label(results),
                                       _measured_on(results)), '']
        for title, header, rows in tables(results):
            if title == 'targets':
                lines += _list_table('targets, %s' % shape_label(results),
                                     header, rows)
        lines += _images(paths)
    lines += ['Every table of these runs (per scenario and backend, the '
              'steps of a disk, the boot storm, the fleet, the lifecycle '
              'pass, the physical limits): ``%s``, written by the same '
              'runs.' % DOC, '', END]
    return '\n'.join(lines)


def doc_page(shapes: list) -> str:
    """doc/source/performance.rst: every table of each lab shape's run."""
    title = 'Performance: every table of the last benchmark runs'
    lines = ['.. This file is written by benchmarks/run.py --readme; do not '
             'edit.', '', '=' * len(title), title, '=' * len(title), '',
             'How to run them and what the targets mean: the README\'s '
             'Performance section.', '']
    for results, paths in shapes:
        heading = 'Lab: %s' % shape_label(results)
        lines += [heading, '-' * len(heading), '', _measured_on(results),
                  '']
        lines += _images(paths)
        for table_title, header, rows in tables(results):
            lines += _list_table(table_title, header, rows)
    return '\n'.join(lines)


def chart(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    names = list(results['scenarios'])
    backends = ('rbd', 'qcow2', 'fastrbd')
    fig, ax = pyplot.subplots(figsize=(11, 5))
    width = 0.27
    for i, backend in enumerate(backends):
        values = [percentile(results['scenarios'][n].get(
            backend, {}).get('times_ms', []), 50) or 0 for n in names]
        ax.bar([x + (i - 1) * width for x in range(len(names))], values,
               width, label='stock Nova %s' % backend
               if backend != 'fastrbd' else 'fastrbd')
    ax.axhline(results['limits']['clone_primitive_ms'], color='black',
               linestyle='--', linewidth=1, label='librbd clone (limit)')
    if results['limits'].get('root_disk_primitive_ms'):
        ax.axhline(results['limits']['root_disk_primitive_ms'],
                   color='grey', linestyle=':', linewidth=1,
                   label='Glance GET + clone + resize (raw root disk limit)')
    ax.set_yscale('log')
    ax.set_ylabel('per-disk time, p50 (ms, log scale)')
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha='right', fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title('Root disk creation through Nova, per backend (lab: %s)'
                 % shape_label(results))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def hosts_chart(data: dict, path: str, what: str) -> None:
    """A storm's or a fleet's total time and per-disk p50/p99."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    fig, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    backends = ('rbd', 'fastrbd')
    labels = ['stock Nova rbd', 'fastrbd']
    left.bar(labels, [data[b]['wall_s'] for b in backends],
             color=['tab:blue', 'tab:green'])
    left.set_ylabel('seconds for all %d disks' % data['disks'])
    left.set_title('%s: total time' % what)
    width = 0.35
    for i, pct in enumerate((50, 99)):
        right.bar([x + (i - 0.5) * width for x in range(2)],
                  [percentile(data[b]['times_ms'], pct) for b in backends],
                  width, label='p%d' % pct)
    right.set_xticks(range(2))
    right.set_xticklabels(labels)
    right.set_yscale('log')
    right.set_ylabel('per-disk time (ms, log scale)')
    right.set_title('%s: per disk' % what)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def update_readme(readme: str, section: str) -> None:
    with open(readme) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise ValueError('%s has no %r ... %r markers' % (readme, BEGIN, END))
    head = text[:text.index(BEGIN)]
    tail = text[text.index(END) + len(END):]
    with open(readme, 'w') as f:
        f.write(head + section + tail)


def write(results: dict, out: str, readme=None) -> None:
    """This shape's files; with readme, the README and doc from all shapes."""
    names = files(results)
    with open(os.path.join(out, names['json']), 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
    with open(os.path.join(out, names['md']), 'w') as f:
        f.write(markdown(results))
    chart(results, os.path.join(out, names['chart']))
    if 'storm' in results:
        hosts_chart(results['storm'], os.path.join(out, names['storm']),
                    'boot storm (%d hosts)' % results['storm'].get('hosts',
                                                                   2))
    if 'fleet' in results:
        hosts_chart(results['fleet'], os.path.join(out, names['fleet']),
                    'fleet (%d hosts)' % results['fleet']['hosts'])
    if readme:
        _write_docs(out, readme)


def load_shapes(out: str) -> list:
    """Every lab shape's results in out (results.json, results-3osd.json).

    Fewest OSDs first.
    """
    found = []
    for path in glob.glob(os.path.join(out, 'results*.json')):
        with open(path) as f:
            results = json.load(f)
        if os.path.basename(path) == files(results)['json']:
            found.append(results)
    return sorted(found, key=lambda r: (shape(r)['osds'],
                                        shape(r)['pool_size']))


def _write_docs(out: str, readme: str) -> None:
    """The README's short section, and every table in doc/."""
    shapes = load_shapes(out)

    def rel(results, page):
        return [os.path.relpath(os.path.join(out, name),
                                os.path.dirname(os.path.abspath(page)))
                for name in charts(results)]
    doc = os.path.join(os.path.dirname(os.path.abspath(readme)), DOC)
    update_readme(readme, rst([(r, rel(r, readme)) for r in shapes]))
    page = _keep_boot(doc, doc_page([(r, rel(r, doc)) for r in shapes]) + '\n')
    with open(doc, 'w') as f:
        f.write(page)


def _keep_boot(doc: str, page: str) -> str:
    """The page, with the boot benchmark's block of the old page kept."""
    from benchmarks import bootreport
    try:
        with open(doc) as f:
            return bootreport.keep_block(f.read(), page)
    except FileNotFoundError:
        return page
