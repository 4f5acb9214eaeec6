"""fastrbd against stock Nova's Rbd and Qcow2 backends, on one lab.

``python -m benchmarks.run [--smoke] [--out DIR] [--readme README.rst]
[--set KEY=N ...] [--only SECTION ...]`` with the lab's FASTCLONE_*
variables set (``tools/bench`` does all that).  In one run, on the same
cluster and the same Glance images, it creates instance root disks through
Nova's real image-backend code with each backend (benchmarks/worker.py: one
process per "host"), measures the physical limits beside them, and writes
results.json, results.md and results.png (and, with --readme, the README's
Performance section and doc/source/performance.rst).

The lab's shape decides the file names and the sizes: one OSD (pools of
size 1) writes results.json; N OSDs write results-<N>osd.json, with the
scenarios that write full copies made smaller (REPLICATED), as every byte
is written 3 times there.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import osdstats
from benchmarks import report
from fastclone_lab import labkit

MiB = 1 << 20
GiB = 1 << 30
BACKENDS = ('rbd', 'qcow2', 'fastrbd')
FULL = dict(raw_mib=1024, qcow2_virtual_mib=1024, qcow2_data_mib=512,
            big_mib=8192, big_data_mib=1024, single_repeat=3, sequential=50,
            concurrent=100, qcow2_more=50, per_host=25, size_disks=20,
            limit_repeat=3, root_gb=10, lifecycle_bases=10000,
            lifecycle_deleted=1000, lifecycle_clones=1000,
            storm_disks=500, storm_threads=32, storm_mib=256,
            storm_data_mib=32, fleet_hosts=8, fleet_per_host=25,
            fleet_mib=256, fleet_data_mib=32)
# On a lab of 3 replicas stock Rbd's full copies take 3 times the disk:
# fewer of them at once.  Peak: about 14 GiB of data (the run's Glance
# images and the storm's or the fleet's copies), 45 GB on the three OSDs.
REPLICATED = dict(FULL, qcow2_more=15, per_host=8, storm_disks=200)
SMOKE = dict(raw_mib=16, qcow2_virtual_mib=32, qcow2_data_mib=16,
             big_mib=64, big_data_mib=16, single_repeat=1, sequential=3,
             concurrent=4, qcow2_more=2, per_host=2, size_disks=2,
             limit_repeat=1, root_gb=1, lifecycle_bases=20,
             lifecycle_deleted=2, lifecycle_clones=2,
             storm_disks=12, storm_threads=4, storm_mib=16, storm_data_mib=4,
             fleet_hosts=3, fleet_per_host=3, fleet_mib=16, fleet_data_mib=4)
SECTIONS = ('raw', 'qcow2', 'hosts', 'size', 'storm', 'fleet', 'lifecycle')
# the images of a storm or a fleet, in the order disk i takes them (i mod 3)
MIX = ('raw (rbd store)', 'qcow2', 'raw (file store)')


env = labkit.env


class Lab:
    """Glance and Ceph of the lab, for images and the limits."""

    def __init__(self, workdir):
        import rados
        self.workdir = workdir
        self.glance = labkit.glance()
        self.client = rados.Rados(conffile=env('FASTCLONE_CEPH_CONF'),
                                  rados_id=env('FASTCLONE_NOVA_RBD_USER'))
        self.client.connect(timeout=15)
        self.images = []

    def data_file(self, name, size_mib, data_mib):
        return labkit.data_file(os.path.join(self.workdir, name), size_mib,
                                data_mib)

    def qcow2_file(self, name, virtual_mib, data_mib):
        raw = self.data_file(name, virtual_mib, data_mib)
        path = labkit.qcow2_of(raw)
        os.unlink(raw)
        return path

    def upload(self, path, disk_format, store=None):
        image = labkit.upload(self.glance, path, disk_format, store)
        self.images.append(image.id)
        return image

    def cleanup(self):
        from fastclone_lab import novadisk
        novadisk.start(novadisk.settings_from_env(self.workdir))
        labkit.remove_images(self.glance, self.images)
        self.client.shutdown()


def _timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rbd(*args):
    subprocess.run(['rbd', '--conf', env('FASTCLONE_CEPH_CONF'), '--id',
                    env('FASTCLONE_NOVA_RBD_USER')] + list(args), check=True,
                   capture_output=True)


def measure_limits(lab, raw_image, raw_path, qcow2_image, qcow2_path, repeat,
                   concurrent, root_gb):
    """The physical limits, measured in the same run."""
    pool = env('FASTCLONE_VMS_POOL')
    root_ms, glance_ms = labkit.root_disk_primitive_ms(
        lab.glance, raw_image.id, 20, root_gb * GiB)

    def rbd_import():
        _rbd('import', '--no-progress', raw_path,
             pool + '/fastclone-bench-imp')
        _rbd('rm', '--no-progress', pool + '/fastclone-bench-imp')

    def convert():
        target = 'rbd:%s/fastclone-bench-conv:id=%s:conf=%s' % (
            pool, env('FASTCLONE_NOVA_RBD_USER'), env('FASTCLONE_CEPH_CONF'))
        subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                        '-W', '-m', '16', qcow2_path, target], check=True)
        _rbd('rm', '--no-progress', pool + '/fastclone-bench-conv')

    def download():
        for _chunk in lab.glance.images.data(qcow2_image.id):
            pass
    return {'clone_primitive_ms': labkit.clone_primitive_ms(raw_image.id,
                                                            20),
            'clone_and_resize_primitive_ms': labkit.clone_primitive_ms(
                raw_image.id, 20, resize_to=root_gb * GiB),
            'glance_get_ms': glance_ms,
            'root_disk_primitive_ms': root_ms,
            'clones_concurrent_16_threads_s':
                labkit.clone_primitive_parallel_s(raw_image.id, concurrent,
                                                  16),
            'clones_and_resizes_concurrent_16_threads_s':
                labkit.clone_primitive_parallel_s(
                    raw_image.id, concurrent, 16, resize_to=root_gb * GiB),
            'rbd_import_raw_s': _timed(rbd_import, repeat),
            'qemu_img_convert_to_rbd_s': _timed(convert, repeat),
            'glance_download_qcow2_s': _timed(download, repeat)}


def worker(backend, image_id, count, threads=1, first_alone=False,
           root_gb=10, barrier=None):
    """One "host" making count disks; image_id may list several (a,b,c)."""
    workdir = tempfile.mkdtemp(prefix='fastclone-bench-%s-' % backend)
    cmd = [sys.executable, '-m', 'benchmarks.worker', '--backend', backend,
           '--image', image_id, '--count', str(count), '--threads',
           str(threads), '--workdir', workdir, '--root-gb', str(root_gb)]
    if first_alone:
        cmd.append('--first-alone')
    if barrier:
        cmd += ['--barrier', barrier]
    # a worker that dies of a signal (an abort in librados) prints every
    # thread's Python stack first
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS='ignore',
                                   PYTHONFAULTHANDLER='1'))
    subprocess.run(['rm', '-rf', workdir], check=False)
    if proc.returncode:
        fd, path = tempfile.mkstemp(prefix='fastclone-bench-worker-%s-'
                                    % backend, suffix='.stderr')
        with os.fdopen(fd, 'w') as f:
            f.write(proc.stderr)
        raise RuntimeError('worker %s failed (rc %d; all of its stderr: %s): '
                           '%s' % (backend, proc.returncode, path,
                                   proc.stderr[-12000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lifecycle_pass(cfg):
    """benchmarks/lifecycle.py: one pass over that many bases."""
    workdir = tempfile.mkdtemp(prefix='fastclone-bench-lifecycle-')
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.lifecycle',
                           '--bases', str(cfg['lifecycle_bases']),
                           '--deleted', str(cfg['lifecycle_deleted']),
                           '--with-clones', str(cfg['lifecycle_clones']),
                           '--workdir', workdir],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    subprocess.run(['rm', '-rf', workdir], check=False)
    if proc.returncode:
        raise RuntimeError('lifecycle bench failed: %s' % proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _release_when_ready(barrier, futures):
    """Create barrier/go once every host is ready (or one has ended)."""
    while (len([f for f in os.listdir(barrier) if f.startswith('ready.')])
           < len(futures) and not any(f.done() for f in futures)):
        time.sleep(0.01)
    open(os.path.join(barrier, 'go'), 'w').close()


def hosts(backend, image_id, count, root_gb, n=2, threads=1):
    """n workers ("hosts") starting their disks at once; results merged.

    Each loads Nova first, then all are released together; the wall time
    is from that moment to the last host's last disk.
    """
    with tempfile.TemporaryDirectory(prefix='fastclone-bench-go-') as go, \
            concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(worker, backend, image_id, count,
                               threads=threads, root_gb=root_gb, barrier=go)
                   for _ in range(n)]
        _release_when_ready(go, futures)
        runs = [f.result() for f in futures]
    merged = report.merge(runs)
    merged['wall_s'] = (max(r['ended_at'] for r in runs) -
                        min(r['started_at'] for r in runs))
    return merged


class Scenarios:
    """The results' scenarios, each with what the OSDs wrote meanwhile."""

    def __init__(self, results, ceph):
        self.sc = results['scenarios']
        self.ceph = ceph

    def measure(self, fn, *args, **kwargs) -> dict:
        """fn's metrics, plus osd_written_bytes: every copy, cleanup too."""
        before = self.ceph.counters()
        metrics = fn(*args, **kwargs)
        metrics['osd_written_bytes'] = osdstats.delta(
            before, self.ceph.counters())['written_bytes']
        return metrics

    def add(self, name, backend, fn, *args, **kwargs) -> None:
        self.sc.setdefault(name, {})[backend] = self.measure(fn, *args,
                                                             **kwargs)


def _per_backend(cfg, lab, add, want, raw, qcow2_path, log):
    gb = cfg['root_gb']
    for backend in BACKENDS:
        if want('raw'):
            log('1 raw: %s' % backend)
            add('raw: 1 disk', backend, lambda: report.merge(
                [worker(backend, raw.id, 1, root_gb=gb)
                 for _ in range(cfg['single_repeat'])]))
            add('raw: %d sequential' % cfg['sequential'], backend, worker,
                backend, raw.id, cfg['sequential'], root_gb=gb)
            add('raw: %d concurrent' % cfg['concurrent'], backend, worker,
                backend, raw.id, cfg['concurrent'],
                threads=cfg['concurrent'], root_gb=gb)
        if want('qcow2'):
            log('2 qcow2: %s' % backend)
            image = lab.upload(qcow2_path, 'qcow2')
            add('qcow2: first + %d' % cfg['qcow2_more'], backend, worker,
                backend, image.id, cfg['qcow2_more'] + 1, first_alone=True,
                root_gb=gb)
        if want('hosts'):
            log('3 two hosts: %s' % backend)
            image = lab.upload(qcow2_path, 'qcow2')
            add('qcow2: 2 hosts x %d' % cfg['per_host'], backend, hosts,
                backend, image.id, cfg['per_host'], gb)


def _sizes(cfg, lab, add, raw):
    big = lab.upload(lab.data_file('big.img', cfg['big_mib'],
                                   cfg['big_data_mib']), 'raw')
    for label, image in (('%d MiB' % cfg['raw_mib'], raw),
                         ('%d MiB' % cfg['big_mib'], big)):
        for backend in ('rbd', 'fastrbd'):
            add('raw clone: %s' % label, backend, worker, backend, image.id,
                cfg['size_disks'], root_gb=cfg['root_gb'])


def run(cfg, lab, log, only=SECTIONS):
    ceph = osdstats.Cluster()
    try:
        results = {'machine': machine(), 'lab': ceph.shape(), 'config': cfg,
                   'scenarios': {}, 'sections': list(only)}
        scenarios = Scenarios(results, ceph)
        _run(cfg, lab, log, only, results, scenarios)
    finally:
        ceph.close()
    results['targets'] = report.targets(results)
    return results


def _run(cfg, lab, log, only, results, scenarios):
    log('lab: %(osds)d OSD(s), pools of size %(pool_size)d' % results['lab'])
    log('images: uploading')
    raw_path = lab.data_file('raw.img', cfg['raw_mib'], cfg['raw_mib'])
    raw = lab.upload(raw_path, 'raw')
    qcow2_path = lab.qcow2_file('q.raw', cfg['qcow2_virtual_mib'],
                                cfg['qcow2_data_mib'])
    q_limits = lab.upload(qcow2_path, 'qcow2')
    log('limits')
    results['limits'] = measure_limits(lab, raw, raw_path, q_limits,
                                       qcow2_path, cfg['limit_repeat'],
                                       cfg['concurrent'], cfg['root_gb'])
    _per_backend(cfg, lab, scenarios.add, only.__contains__, raw,
                 qcow2_path, log)
    if 'size' in only:
        log('4 size')
        _sizes(cfg, lab, scenarios.add, raw)
    if 'storm' in only:
        log('5 boot storm: %d disks' % cfg['storm_disks'])
        results['storm'] = many_hosts(
            lab, scenarios, 2, cfg['storm_disks'] // 2, cfg['storm_threads'],
            cfg['storm_mib'], cfg['storm_data_mib'], 'storm')
    if 'fleet' in only:
        log('6 fleet: %d hosts x %d' % (cfg['fleet_hosts'],
                                        cfg['fleet_per_host']))
        results['fleet'] = many_hosts(
            lab, scenarios, cfg['fleet_hosts'], cfg['fleet_per_host'],
            cfg['fleet_per_host'], cfg['fleet_mib'], cfg['fleet_data_mib'],
            'fleet')
    if 'lifecycle' in only:
        log('7 lifecycle pass over %d bases' % cfg['lifecycle_bases'])
        results['lifecycle'] = lifecycle_pass(cfg)


def many_hosts(lab, scenarios, n, per_host, threads, mib, data_mib, tag):
    """Hosts spawning at once from a cold cache, stock Rbd vs fastrbd.

    Fresh images for each backend (nothing cached yet): MIX, raw in the
    rbd store, qcow2, raw in the file store; disk i of a host is made from
    image i mod 3, threads at a time per host.  downloads_by_image: how
    often each image was downloaded, cluster-wide.
    """
    raw = lab.data_file(tag + '.raw', mib, data_mib)
    qcow2 = lab.qcow2_file(tag + '-q.raw', mib, data_mib)
    out = {'hosts': n, 'per_host': per_host, 'disks': n * per_host,
           'threads': threads, 'image_mib': mib, 'images': list(MIX)}
    for backend in ('rbd', 'fastrbd'):
        ids = [lab.upload(raw, 'raw').id, lab.upload(qcow2, 'qcow2').id,
               lab.upload(raw, 'raw', env('FASTCLONE_GLANCE_FILE_STORE')).id]
        merged = scenarios.measure(hosts, backend, ','.join(ids), per_host,
                                   1, n=n, threads=threads)
        by_id = merged.get('downloads_by_image', {})
        merged['downloads_by_image'] = {label: by_id.get(i, 0)
                                        for label, i in zip(MIX, ids)}
        merged['times_ms'].sort()
        out[backend] = merged
    return out


def machine():
    return {'cpus': os.cpu_count(), 'python': platform.python_version(),
            'kernel': platform.release(),
            'memory_gib': round(os.sysconf('SC_PAGE_SIZE') *
                                os.sysconf('SC_PHYS_PAGES') / (1 << 30), 1),
            'date': time.strftime('%Y-%m-%d')}


def settings(smoke: bool, shape: dict, overrides: list) -> dict:
    """The sizes: SMOKE, FULL, or REPLICATED on a lab with replicas."""
    cfg = dict(SMOKE if smoke else
               FULL if shape['pool_size'] == 1 else REPLICATED, smoke=smoke)
    for item in overrides:
        key, _, value = item.partition('=')
        if key not in cfg or key == 'smoke' or not value.isdigit():
            raise ValueError('--set %s: wants KEY=N, KEY one of %s'
                             % (item, ', '.join(sorted(set(cfg) -
                                                       {'smoke'}))))
        cfg[key] = int(value)
    return cfg


def _shape() -> dict:
    ceph = osdstats.Cluster()
    try:
        return ceph.shape()
    finally:
        ceph.close()


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--smoke', action='store_true',
                        help='tiny images and few disks (CI)')
    parser.add_argument('--out', default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'results'))
    parser.add_argument('--readme', help='README.rst to update')
    parser.add_argument('--set', action='append', default=[],
                        metavar='KEY=N', help='one size of the run, e.g. '
                        'fleet_hosts=8, fleet_per_host=5, lifecycle_bases='
                        '1000 (not with --readme)')
    parser.add_argument('--only', nargs='+', choices=SECTIONS,
                        default=list(SECTIONS), help='these parts only '
                        '(the limits always; not with --readme)')
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.readme and (args.smoke or args.set or
                        set(args.only) != set(SECTIONS)):
        parser.error('--readme takes a full run\'s results, not --smoke, '
                     '--set or --only')
    shape = _shape()
    try:
        cfg = settings(args.smoke, shape, args.set)
    except ValueError as e:
        parser.error(str(e))
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()

    def log(msg):
        print('[bench %6.1fs] %s' % (time.perf_counter() - start, msg),
              file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix='fastclone-bench-') as tmp:
        lab = Lab(tmp)
        try:
            results = run(cfg, lab, log, tuple(args.only))
        finally:
            lab.cleanup()
    results['duration_s'] = time.perf_counter() - start
    report.write(results, args.out, args.readme)
    log('wrote %s' % os.path.join(args.out, report.files(results)['json']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
