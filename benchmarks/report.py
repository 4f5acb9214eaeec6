"""Benchmark results: merge runs, check targets, write JSON/markdown/PNG.

Pure functions on the results dict of benchmarks/run.py (plus the writers),
so the report can be tested and regenerated without the lab.
"""

import json
import os
import statistics

MiB = 1 << 20
COLUMNS = ('total s', 'first ms', 'p50 ms', 'p95 ms', 'failures',
           'Ceph written MiB', 'downloaded MiB', 'local disk MiB',
           'peak RSS MiB', 'conversions', 'imports', 'x fastrbd total')
BEGIN = '.. BEGIN PERFORMANCE (written by benchmarks/run.py --readme)'
END = '.. END PERFORMANCE'


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


def row(metrics: dict, fastrbd: dict) -> list:
    times = metrics['times_ms']
    ratio = (metrics['wall_s'] / fastrbd['wall_s']
             if fastrbd and fastrbd['wall_s'] else None)
    return [metrics['wall_s'], first_ms(metrics), percentile(times, 50),
            percentile(times, 95),
            metrics['failures'], metrics['ceph_allocated_bytes'] / MiB,
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


def targets(results: dict) -> list:
    """The issue's targets, each as a ratio measured in this run."""
    lim = results['limits']
    seq = _scenario(results, 'raw: ', 'sequential')
    fast_p50 = percentile(seq['fastrbd']['times_ms'], 50)
    fast_p99 = percentile(seq['fastrbd']['times_ms'], 99)
    prim = lim['clone_primitive_ms']
    cfg = results['config']
    small, big = (percentile(_scenario(results, 'raw clone: %d MiB' % mib)[
        'fastrbd']['times_ms'], 50) for mib in (cfg['raw_mib'],
                                                cfg['big_mib']))
    q50 = _scenario(results, 'qcow2: first')
    two = _scenario(results, 'qcow2: 2 hosts')
    conc = _scenario(results, 'raw: ', 'concurrent')
    speedup = q50['rbd']['wall_s'] / q50['fastrbd']['wall_s']
    limit = lim['glance_download_qcow2_s'] + lim['qemu_img_convert_to_rbd_s']
    first = first_ms(q50['fastrbd']) / 1000
    rss = q50['fastrbd']['peak_rss_mib']
    burst = conc['fastrbd']['wall_s'] / lim['clones_concurrent_16_threads_s']
    return [
        _target('raw clone path p50 / librbd clone', fast_p50 / prim,
                '<= 1.5 (p99 <= 3)', fast_p50 / prim <= 1.5 and
                fast_p99 / prim <= 3, 'p50 %.1f ms, p99 %.1f ms (%.1fx) / '
                '%.1f ms%s' % (fast_p50, fast_p99, fast_p99 / prim, prim,
                               _floor(lim, 'clone_and_resize_primitive_ms',
                                      fast_p50, 'ms'))),
        _target('%d concurrent spawns of one image, one host / as many '
                'librbd clones, 16 threads' % len(conc['fastrbd']['times_ms']
                                                  ), burst, '<= 2',
                burst <= 2, '%.2f s / %.2f s%s' % (
                    conc['fastrbd']['wall_s'],
                    lim['clones_concurrent_16_threads_s'], _floor(
                        lim, 'clones_and_resizes_concurrent_16_threads_s',
                        conc['fastrbd']['wall_s'], 's'))),
        _target('big / small image clone p50', big / small, '<= 1.2',
                big / small <= 1.2, '%.1f ms / %.1f ms' % (big, small)),
        _target('qcow2 disks after the first: stock Rbd / fastrbd time',
                speedup, '>= 20', speedup >= 20, '%.1f s / %.1f s' % (
                    q50['rbd']['wall_s'], q50['fastrbd']['wall_s'])),
        _target('two hosts: conversions cluster-wide (fastrbd)',
                two['fastrbd']['conversions'], '== 1',
                two['fastrbd']['conversions'] == 1,
                'stock Rbd: %d conversions, %d full imports' % (
                    two['rbd']['conversions'], two['rbd']['imports'])),
        _target('first qcow2 disk / (download + convert limit)',
                first / limit, '<= 1.3', first / limit <= 1.3,
                '%.2f s / %.2f s' % (first, limit)),
        _target('concurrent disks: failures (fastrbd)',
                conc['fastrbd']['failures'], '== 0',
                conc['fastrbd']['failures'] == 0,
                'of %d' % len(conc['fastrbd']['times_ms'])),
        _target('peak RSS of the fetch path, MiB (fastrbd process)', rss,
                '<= 200', rss <= 200, 'of which %.0f MiB is the process '
                'before the first disk (Nova imported); qemu-img peak %.0f '
                'MiB' % (q50['fastrbd']['baseline_rss_mib'],
                         q50['fastrbd']['peak_child_rss_mib'])),
    ]


def _floor(lim: dict, key: str, measured: float, unit: str) -> str:
    """'; against clone + resize alone: ...' when the run measured it."""
    if not lim.get(key):
        return ''
    return ('; clone + resize to the root disk alone: %.2f %s (%.1fx)'
            % (lim[key], unit, measured / lim[key]))


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


STORM_COLUMNS = ('total s', 'p50 ms', 'p99 ms', 'failures',
                 'Ceph written MiB', 'downloads', 'conversions', 'imports')


def storm_table(storm: dict):
    title = ('boot storm: %d disks on 2 hosts, %d at a time per host, '
             'images raw (rbd store), qcow2, raw (file store) of %d MiB'
             % (storm['disks'], storm['threads'], storm['image_mib']))
    rows = []
    for backend in ('rbd', 'fastrbd'):
        m = storm[backend]
        rows.append([backend] + [_fmt(v) for v in (
            m['wall_s'], percentile(m['times_ms'], 50),
            percentile(m['times_ms'], 99), m['failures'],
            m['ceph_allocated_bytes'] / MiB, m['downloads'],
            m['conversions'], m['imports'])])
    return title, ['backend'] + list(STORM_COLUMNS), rows


def lifecycle_table(life: dict):
    """One lifecycle pass over many bases: time and RADOS operations."""
    title = ('lifecycle pass: %d bases (%d of deleted images, %d with a '
             'clone)' % (life['bases'], life['deleted_images'],
                         life['with_clones']))
    header = ['pass', 'seconds', 'RADOS ops', 'RADOS ops per base',
              'Glance GETs', 'retired', 'removed']
    rows = [[which, _fmt(p['seconds']), str(p['rados_ops']),
             _fmt(p['rados_ops'] / life['bases']), str(p['glance_gets']),
             str(p['retired']), str(p['removed'])]
            for which, p in (('first (with work)', life['first']),
                             ('steady state', life['steady']))]
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


def rst(results: dict, chart: str, storm_png=None) -> str:
    lines = [BEGIN, '', 'Measured %s on %s CPUs, %s GiB RAM, Python %s, %s.'
             % (results['machine']['date'], results['machine']['cpus'],
                results['machine']['memory_gib'],
                results['machine']['python'], results['machine']['ceph']),
             '', '.. image:: %s' % chart, '']
    if storm_png:
        lines += ['.. image:: %s' % storm_png, '']
    for title, header, rows in tables(results):
        lines += ['.. list-table:: %s' % title, '   :header-rows: 1', '']
        for cells in [header] + rows:
            lines.append('   * - ' + cells[0])
            lines += ['     - ' + (c or '-') for c in cells[1:]]
        lines.append('')
    lines.append(END)
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
    ax.set_yscale('log')
    ax.set_ylabel('per-disk time, p50 (ms, log scale)')
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha='right', fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title('Root disk creation through Nova, per backend')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def storm_chart(storm: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    fig, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    backends = ('rbd', 'fastrbd')
    labels = ['stock Nova rbd', 'fastrbd']
    left.bar(labels, [storm[b]['wall_s'] for b in backends],
             color=['tab:blue', 'tab:green'])
    left.set_ylabel('seconds for all %d disks' % storm['disks'])
    left.set_title('boot storm: total time')
    width = 0.35
    for i, pct in enumerate((50, 99)):
        right.bar([x + (i - 0.5) * width for x in range(2)],
                  [percentile(storm[b]['times_ms'], pct) for b in backends],
                  width, label='p%d' % pct)
    right.set_xticks(range(2))
    right.set_xticklabels(labels)
    right.set_yscale('log')
    right.set_ylabel('per-disk time (ms, log scale)')
    right.set_title('boot storm: per disk')
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
    with open(os.path.join(out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
    with open(os.path.join(out, 'results.md'), 'w') as f:
        f.write(markdown(results))
    chart(results, os.path.join(out, 'results.png'))
    if 'storm' in results:
        storm_chart(results['storm'], os.path.join(out, 'storm.png'))
    if readme:
        def rel(name):
            return os.path.relpath(os.path.join(out, name),
                                   os.path.dirname(os.path.abspath(readme)))
        update_readme(readme, rst(results, rel('results.png'),
                                  rel('storm.png') if 'storm' in results
                                  else None))
