"""fastrbd against stock Nova's Rbd and Qcow2 backends, on one lab.

``python -m benchmarks.run [--smoke] [--out DIR] [--readme README.rst]``
with the lab's FASTCLONE_* variables set (``tools/bench`` does all that).
In one run, on the same cluster and the same Glance images, it creates
instance root disks through Nova's real image-backend code with each
backend (benchmarks/worker.py: one process per "host"), measures the
physical limits beside them, and writes results.json, results.md and
results.png (and, with --readme, the README's Performance section).
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

from benchmarks import report
from fastclone_lab import labkit

MiB = 1 << 20
GiB = 1 << 30
BACKENDS = ('rbd', 'qcow2', 'fastrbd')
FULL = dict(raw_mib=1024, qcow2_virtual_mib=1024, qcow2_data_mib=512,
            big_mib=8192, big_data_mib=1024, single_repeat=3, sequential=50,
            concurrent=100, qcow2_more=50, per_host=25, size_disks=20,
            limit_repeat=3, root_gb=10, lifecycle_bases=1000,
            storm_disks=500, storm_threads=32, storm_mib=256,
            storm_data_mib=32)
SMOKE = dict(raw_mib=16, qcow2_virtual_mib=32, qcow2_data_mib=16,
             big_mib=64, big_data_mib=16, single_repeat=1, sequential=3,
             concurrent=4, qcow2_more=2, per_host=2, size_disks=2,
             limit_repeat=1, root_gb=1, lifecycle_bases=20,
             storm_disks=12, storm_threads=4, storm_mib=16, storm_data_mib=4)


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
           root_gb=10):
    """One "host" making count disks; image_id may list several (a,b,c)."""
    workdir = tempfile.mkdtemp(prefix='fastclone-bench-%s-' % backend)
    cmd = [sys.executable, '-m', 'benchmarks.worker', '--backend', backend,
           '--image', image_id, '--count', str(count), '--threads',
           str(threads), '--workdir', workdir, '--root-gb', str(root_gb)]
    if first_alone:
        cmd.append('--first-alone')
    # a worker that dies of a signal (an abort in librados) prints every
    # thread's Python stack first
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS='ignore',
                                   PYTHONFAULTHANDLER='1'))
    subprocess.run(['rm', '-rf', workdir], check=False)
    if proc.returncode:
        raise RuntimeError('worker %s failed (rc %d): %s'
                           % (backend, proc.returncode, proc.stderr[-12000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lifecycle_pass(bases):
    """benchmarks/lifecycle.py: one pass over that many bases."""
    workdir = tempfile.mkdtemp(prefix='fastclone-bench-lifecycle-')
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.lifecycle',
                           '--bases', str(bases), '--workdir', workdir],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    subprocess.run(['rm', '-rf', workdir], check=False)
    if proc.returncode:
        raise RuntimeError('lifecycle bench failed: %s' % proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hosts(backend, image_id, count, root_gb, n=2, threads=1):
    """n workers ("hosts") at once; their results merged.

    The wall time is the slower host's, from its first disk to its last.
    """
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        runs = list(pool.map(lambda _: worker(backend, image_id, count,
                                              threads=threads,
                                              root_gb=root_gb), range(n)))
    merged = report.merge(runs)
    merged['wall_s'] = max(r['wall_s'] for r in runs)
    return merged


def run(cfg, lab, log):
    results = {'machine': machine(), 'config': cfg, 'scenarios': {}}
    sc = results['scenarios']
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
    gb = cfg['root_gb']
    for backend in BACKENDS:
        log('1 raw: %s' % backend)
        singles = [worker(backend, raw.id, 1, root_gb=gb)
                   for _ in range(cfg['single_repeat'])]
        sc.setdefault('raw: 1 disk', {})[backend] = report.merge(singles)
        sc.setdefault('raw: %d sequential' % cfg['sequential'], {})[
            backend] = worker(backend, raw.id, cfg['sequential'], root_gb=gb)
        sc.setdefault('raw: %d concurrent' % cfg['concurrent'], {})[
            backend] = worker(backend, raw.id, cfg['concurrent'],
                              threads=cfg['concurrent'], root_gb=gb)
        log('2 qcow2: %s' % backend)
        image = lab.upload(qcow2_path, 'qcow2')
        sc.setdefault('qcow2: first + %d' % cfg['qcow2_more'], {})[
            backend] = worker(backend, image.id, cfg['qcow2_more'] + 1,
                              first_alone=True, root_gb=gb)
        log('3 two hosts: %s' % backend)
        image = lab.upload(qcow2_path, 'qcow2')
        sc.setdefault('qcow2: 2 hosts x %d' % cfg['per_host'], {})[
            backend] = hosts(backend, image.id, cfg['per_host'], gb)
    log('4 size')
    big = lab.upload(lab.data_file('big.img', cfg['big_mib'],
                                   cfg['big_data_mib']), 'raw')
    for label, image in (('%d MiB' % cfg['raw_mib'], raw),
                         ('%d MiB' % cfg['big_mib'], big)):
        for backend in ('rbd', 'fastrbd'):
            sc.setdefault('raw clone: %s' % label, {})[backend] = worker(
                backend, image.id, cfg['size_disks'], root_gb=gb)
    log('5 boot storm: %d disks' % cfg['storm_disks'])
    results['storm'] = storm(cfg, lab)
    log('6 lifecycle pass over %d bases' % cfg['lifecycle_bases'])
    results['lifecycle'] = lifecycle_pass(cfg['lifecycle_bases'])
    results['targets'] = report.targets(results)
    return results


def storm(cfg, lab):
    """Many disks from a mix of images on two hosts, stock Rbd vs fastrbd.

    Fresh images for each backend (nothing cached yet): raw in the rbd
    store, qcow2, raw in the file store; disk i of a host is made from
    image i mod 3, storm_threads at a time per host.
    """
    raw = lab.data_file('storm.raw', cfg['storm_mib'], cfg['storm_data_mib'])
    qcow2 = lab.qcow2_file('storm-q.raw', cfg['storm_mib'],
                           cfg['storm_data_mib'])
    out = {'disks': cfg['storm_disks'], 'threads': cfg['storm_threads'],
           'image_mib': cfg['storm_mib']}
    for backend in ('rbd', 'fastrbd'):
        ids = [lab.upload(raw, 'raw').id, lab.upload(qcow2, 'qcow2').id,
               lab.upload(raw, 'raw', env('FASTCLONE_GLANCE_FILE_STORE')).id]
        merged = hosts(backend, ','.join(ids), cfg['storm_disks'] // 2, 1,
                       threads=cfg['storm_threads'])
        merged['times_ms'].sort()
        out[backend] = merged
    return out


def machine():
    return {'cpus': os.cpu_count(), 'python': platform.python_version(),
            'kernel': platform.release(),
            'memory_gib': round(os.sysconf('SC_PAGE_SIZE') *
                                os.sysconf('SC_PHYS_PAGES') / (1 << 30), 1),
            'ceph': 'single node, 1 bluestore OSD on a sparse file, '
                    'loopback (tools/lab)',
            'date': time.strftime('%Y-%m-%d')}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--smoke', action='store_true',
                        help='tiny images and few disks (CI)')
    parser.add_argument('--out', default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'results'))
    parser.add_argument('--readme', help='README.rst to update')
    args = parser.parse_args(argv)
    if args.smoke and args.readme:
        parser.error('--readme takes a full run\'s results, not --smoke')
    cfg = dict(SMOKE if args.smoke else FULL, smoke=args.smoke)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()

    def log(msg):
        print('[bench %6.1fs] %s' % (time.perf_counter() - start, msg),
              file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix='fastclone-bench-') as tmp:
        lab = Lab(tmp)
        try:
            results = run(cfg, lab, log)
        finally:
            lab.cleanup()
    results['duration_s'] = time.perf_counter() - start
    report.write(results, args.out, args.readme)
    log('wrote %s' % args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
