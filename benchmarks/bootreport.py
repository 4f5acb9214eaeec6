"""The boot benchmark's results: table, chart, the README's and doc's part.

Pure functions on the results dict of ``benchmarks/boot.py`` (plus the
writers), so the report can be tested and regenerated without the lab.
The README keeps a short part (when, what, the chart); every figure goes to
the boot block of ``doc/source/performance.rst``.
"""

import json
import os

from benchmarks import report

MiB = 1 << 20
JSON = 'boot.json'
MD = 'boot.md'
PNG = 'boot.png'
BEGIN = '.. BEGIN BOOT (written by benchmarks/boot.py --readme)'
END = '.. END BOOT'
HEADER = ['backend', 'image', 'servers', 'failures', 'ACTIVE p50 s',
          'ACTIVE p95 s', 'marker p50 s', 'marker p95 s', 'last marker s',
          'Ceph written MiB', 'downloads', 'conversions', 'imports']
LIMIT = 'plain QEMU, local raw file'


def _seconds(group: dict, key: str) -> list:
    """The key's seconds of the group's boots that got there."""
    return [b[key] for b in group['boots'] if b.get(key) is not None]


def failed(group: dict) -> int:
    """Boots that failed: an error, or no marker."""
    return sum(1 for b in group['boots']
               if b.get('error') or b.get('marker_s') is None)


def failures(results: dict) -> int:
    return sum(failed(g) for g in results['groups'])


def summary(group: dict) -> dict:
    active = _seconds(group, 'active_s')
    marker = _seconds(group, 'marker_s')
    return {
        'active_p50': report.percentile(active, 50),
        'active_p95': report.percentile(active, 95),
        'marker_p50': report.percentile(marker, 50),
        'marker_p95': report.percentile(marker, 95),
        'marker_max': max(marker) if marker else None,
        'failures': failed(group),
    }


def group_row(group: dict) -> list:
    s = summary(group)
    return [group['backend'], group['image'], str(group['servers']),
            str(s['failures'])] + [report._fmt(v) for v in (
                s['active_p50'], s['active_p95'], s['marker_p50'],
                s['marker_p95'], s['marker_max'],
                group['ceph_written_bytes'] / MiB)] + [
        str(group['downloads']), str(group['conversions']),
        str(group['imports'])]


def limit_rows(limit: dict) -> list:
    """The plain-QEMU limit as rows of the same table (no API, no Ceph)."""
    def row(label, values, count, fails):
        return [LIMIT, label, str(count), str(fails), '-', '-',
                report._fmt(report.percentile(values, 50)),
                report._fmt(report.percentile(values, 95)),
                report._fmt(max(values) if values else None),
                '0', '0', '0', '0']
    return [row('raw, one at a time', limit['one_s'], len(limit['one_s']), 0),
            row('raw, all at once', limit['at_once_s'], limit['at_once'],
                limit['at_once_failures'])]


def title(results: dict) -> str:
    cfg = results['config']
    text = ('guests booted through Nova\'s API: %d servers at once per '
            'backend and image (flavor %s), seconds from the create '
            'request' % (cfg['servers'], cfg['flavor']))
    if cfg.get('label'):
        text += ' [%s]' % cfg['label']
    return text


def table(results: dict):
    rows = [group_row(g) for g in results['groups']]
    if 'limit' in results:
        rows += limit_rows(results['limit'])
    return title(results), list(HEADER), rows


def one_line(group: dict) -> str:
    s = summary(group)
    return ('%d/%d markers, ACTIVE p50 %s s, marker p50 %s s p95 %s s, '
            'Ceph %s MiB, %d downloads, %d conversions, %d imports' % (
                group['servers'] - s['failures'], group['servers'],
                report._fmt(s['active_p50']), report._fmt(s['marker_p50']),
                report._fmt(s['marker_p95']),
                report._fmt(group['ceph_written_bytes'] / MiB),
                group['downloads'], group['conversions'], group['imports']))


def limit_note(results: dict) -> str:
    """Says so when the limit was not measured in the groups' run."""
    when = results.get('limit', {}).get('measured_again')
    if not when:
        return ''
    return ('The plain-QEMU rows were measured again on %s (--limit-only), '
            'not in the same run as the servers.' % when)


def markdown(results: dict) -> str:
    name, header, rows = table(results)
    lines = ['# ' + name, '', 'Machine: %s' % json.dumps(results['machine']),
             '', '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    note = limit_note(results)
    if note:
        lines += ['', note]
    return '\n'.join(lines) + '\n'


def _measured(results: dict) -> str:
    text = report._measured_on(results)
    label = results['config'].get('label')
    return text + (' %s.' % label if label else '')


def readme_block(results: dict, chart: str) -> str:
    """The README's part: when, the chart, where the table is."""
    return '\n'.join([
        BEGIN, '', _measured(results) + ' ' + title(results)[0].upper() +
        title(results)[1:] + ', against the same guest booted by plain '
        'QEMU from a local file.', '', '.. image:: %s' % chart, '',
        'The table (p50/p95 to ACTIVE and to the marker, failures, Ceph '
        'written, downloads, conversions): ``%s``.' % report.DOC, '', END])


def doc_block(results: dict, chart: str) -> str:
    """doc/source/performance.rst's boot part: the table and the chart."""
    name, header, rows = table(results)
    lines = [BEGIN, '', 'Boot benchmark', '-' * len('Boot benchmark'), '',
             _measured(results) + ' ``tools/bench --boot``: servers created '
             'through Nova\'s API (``networks: none``) on the lab\'s cloud '
             'tier, TCG guests; the marker is the guest\'s init line with '
             'its own uuid and its disk\'s sum.', '',
             '.. image:: %s' % chart, '']
    lines += report._list_table(name, header, rows)
    note = limit_note(results)
    if note:
        lines += ['', note, '']
    return '\n'.join(lines + [END])


def replace_block(text: str, block: str) -> str:
    """text with its BEGIN..END boot block replaced (appended if none)."""
    if BEGIN in text and END in text:
        head = text[:text.index(BEGIN)]
        tail = text[text.index(END) + len(END):]
        return head + block + tail
    return text.rstrip('\n') + '\n\n' + block + '\n'


def keep_block(old: str, new: str) -> str:
    """new (a rewritten doc page) with old's boot block carried over."""
    if BEGIN in old and END in old:
        return replace_block(new, old[old.index(BEGIN):
                                      old.index(END) + len(END)])
    return new


def chart(results: dict, path: str) -> None:
    """Time to the marker per backend and image (p50 bar, p95 whisker)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    groups = results['groups']
    labels = ['%s\n%s image' % (g['backend'], g['image']) for g in groups]
    p50 = [summary(g)['marker_p50'] or 0 for g in groups]
    p95 = [summary(g)['marker_p95'] or 0 for g in groups]
    colors = ['tab:green' if g['backend'] == 'fastrbd' else 'tab:blue'
              for g in groups]
    fig, ax = pyplot.subplots(figsize=(10, 4.5))
    xs = range(len(groups))
    ax.bar(xs, p50, color=colors, label='p50 (green: fastrbd)')
    ax.errorbar(xs, p95, fmt='_', color='black', markersize=14,
                linestyle='none', label='p95')
    limit = results.get('limit')
    if limit:
        ax.axhline(report.percentile(limit['at_once_s'], 50), color='red',
                   linestyle='--', linewidth=1,
                   label='plain QEMU, %d at once, p50 (limit)'
                   % limit['at_once'])
        ax.axhline(report.percentile(limit['one_s'], 50), color='gray',
                   linestyle=':', linewidth=1,
                   label='plain QEMU, one guest (limit)')
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel('seconds from create request to marker')
    cfg = results['config']
    ax.set_title('Guests through Nova\'s API: %d servers at once per backend '
                 'and image%s' % (cfg['servers'], '\n[%s]' % cfg['label']
                                  if cfg.get('label') else ''), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def write(results: dict, out: str, readme=None) -> None:
    with open(os.path.join(out, JSON), 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
    with open(os.path.join(out, MD), 'w') as f:
        f.write(markdown(results))
    chart(results, os.path.join(out, PNG))
    if readme:
        write_docs(results, out, readme)


def _update(path: str, block: str) -> None:
    with open(path) as f:
        text = f.read()
    with open(path, 'w') as f:
        f.write(replace_block(text, block))


def write_docs(results: dict, out: str, readme: str) -> None:
    doc = os.path.join(os.path.dirname(os.path.abspath(readme)), report.DOC)

    def rel(page):
        return os.path.relpath(os.path.join(out, PNG),
                               os.path.dirname(os.path.abspath(page)))
    _update(readme, readme_block(results, rel(readme)))
    _update(doc, doc_block(results, rel(doc)))
