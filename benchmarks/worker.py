"""One compute "host" of the benchmark, in its own process.

``python -m benchmarks.worker --backend rbd|qcow2|fastrbd --image ID
--count N [--threads T] [--first-alone] [--keep] [--barrier DIR]
--workdir DIR`` parses a
nova.conf like nova-compute (stock Nova for rbd and qcow2,
nova-compute-fastrbd for fastrbd), creates N root disks from the image
through Nova's real image-backend code, measures them, removes them (unless
--keep), and prints one JSON line.  The functional tests use it as
"another compute host" too.

Measured: each disk's time, failures, bytes downloaded from Glance (and
downloads per image), bytes allocated in Ceph by the images it created (rbd
du's method), local disk used under its instances path, peak RSS of itself
and of its children (qemu-img, rbd), and conversions/imports done.

With --barrier, several workers ("hosts") start their disks at once: each
says it is ready (``DIR/ready.<pid>``) once Nova is loaded, and waits for
``DIR/go``; the caller creates it when all are ready.
"""

import argparse
import collections
import concurrent.futures
import json
import os
import resource
import shutil
import socket
import sys
import time

from fastclone_lab import novadisk

COUNTS = {'downloaded_bytes': 0, 'downloads': 0, 'conversions': 0,
          'imports': 0}
DOWNLOADS_BY_IMAGE = collections.Counter()
BARRIER_TIMEOUT = 900
FIRST_SECONDS = {}  # naming.SECONDS after the first disk (--first-alone)


def _count_nova_work():
    """Count Glance bytes and conversions/imports done by Nova itself."""
    from nova.image import glance
    from nova.storage import rbd_utils
    from nova.virt import images

    download = glance.API.download

    class Counting:
        def __init__(self, f):
            self.f = f

        def write(self, chunk):
            COUNTS['downloaded_bytes'] += len(chunk)
            return self.f.write(chunk)

    def counted_download(self, context, image_id, data=None, dest_path=None,
                         trusted_certs=None):
        COUNTS['downloads'] += 1
        DOWNLOADS_BY_IMAGE[image_id] += 1
        result = download(self, context, image_id,
                          data=Counting(data) if data is not None else None,
                          dest_path=dest_path, trusted_certs=trusted_certs)
        if dest_path and os.path.exists(dest_path):
            COUNTS['downloaded_bytes'] += os.path.getsize(dest_path)
        return result

    glance.API.download = counted_download
    _count_fastclone_downloads(Counting)
    _count_calls(images, 'convert_image', 'conversions')
    _count_calls(rbd_utils.RBDDriver, 'import_image', 'imports')


def _count_fastclone_downloads(counting):
    """Count the cache's own downloads (glanceapi), as Nova's are counted.

    fastrbd's population reads Glance through glanceapi.download (every
    read bounded), not through Nova's glance.API.download.
    """
    from fastclone_backend import glanceapi

    download = glanceapi.download

    def counted(context, image_id, data):
        COUNTS['downloads'] += 1
        DOWNLOADS_BY_IMAGE[image_id] += 1
        return download(context, image_id, counting(data))
    glanceapi.download = counted


def _count_calls(owner, name, key):
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        COUNTS[key] += 1
        return original(*args, **kwargs)
    setattr(owner, name, counted)


def _rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def _allocated_bytes(workdir):
    total = 0
    for root, _dirs, files in os.walk(workdir):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class Ceph:
    """The vms pool, to see what the run allocated there."""

    def __init__(self):
        import rados
        self.client = rados.Rados(
            conffile=os.environ['FASTCLONE_CEPH_CONF'],
            rados_id=os.environ['FASTCLONE_NOVA_RBD_USER'])
        self.client.connect(timeout=15)
        self.ioctx = self.client.open_ioctx(os.environ['FASTCLONE_VMS_POOL'])

    def names(self):
        import rbd
        return set(rbd.RBD().list(self.ioctx))

    def made_here(self, name):
        """False for a cached base another "host" populated meanwhile."""
        import rbd

        from fastclone_backend.cache import naming
        if not naming.is_cache_name(name):
            return True
        try:
            with rbd.Image(self.ioctx, name, read_only=True) as img:
                by = img.metadata_get(naming.META + 'populated_by')
        except (rbd.ImageNotFound, KeyError):
            return False
        return by == '%s:%d' % (socket.gethostname(), os.getpid())

    def allocated(self, name):
        import rbd
        total = [0]

        def add(offset, length, exists):
            if exists:
                total[0] += length
        try:
            with rbd.Image(self.ioctx, name, read_only=True) as img:
                img.diff_iterate(0, img.size(), None, add,
                                 include_parent=False, whole_object=True)
        except rbd.ImageNotFound:
            return 0
        return total[0]

    def close(self):
        self.ioctx.close()
        self.client.shutdown()


def _settings(args):
    helper = os.path.join(os.path.dirname(sys.executable), 'privsep-helper')
    extra = ('[nova_sys_admin]\nhelper_command = %s --config-file %s\n'
             % (helper, os.path.join(args.workdir, 'nova.conf')))
    settings = novadisk.settings_from_env(args.workdir, extra + args.conf)
    settings.images_type = args.backend
    return settings


def _spawn(ctx, image_id, root_gb, made):
    from nova.virt.libvirt import utils as libvirt_utils
    from oslo_utils import fileutils
    instance = novadisk.make_instance(root_gb)
    fileutils.ensure_tree(libvirt_utils.get_instance_path(instance))
    start = time.perf_counter()
    novadisk.create_root_disk(ctx, instance, image_id)
    made.append(instance)
    return (time.perf_counter() - start) * 1000


def _run(ctx, args, made):
    times, errors = [], []

    images = args.image.split(',')

    def one(i):
        return _spawn(ctx, images[i % len(images)], args.root_gb, made)
    first = None
    count = args.count
    if args.first_alone:
        from fastclone_backend.cache import naming
        count -= 1
        try:
            first = one(0)
        except Exception as e:
            errors.append('%s: %s' % (type(e).__name__, e))
        FIRST_SECONDS.update(naming.SECONDS)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        for future in [pool.submit(one, i) for i in range(count)]:
            try:
                times.append(future.result())
            except Exception as e:
                errors.append('%s: %s' % (type(e).__name__, e))
    return first, times, errors, time.perf_counter() - start


def _wait_for_go(barrier):
    """Ready; then block until the caller releases every host at once."""
    if not barrier:
        return
    open(os.path.join(barrier, 'ready.%d' % os.getpid()), 'w').close()
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not os.path.exists(os.path.join(barrier, 'go')):
        if time.monotonic() > deadline:
            raise SystemExit('no go in %s after %d s'
                             % (barrier, BARRIER_TIMEOUT))
        time.sleep(0.005)


def _cleanup(made, backend):
    from nova.virt.libvirt import utils as libvirt_utils
    for instance in made:
        if backend == 'qcow2':
            shutil.rmtree(libvirt_utils.get_instance_path(instance),
                          ignore_errors=True)
        else:
            novadisk.delete_instance_disks(instance)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--backend', choices=('rbd', 'qcow2', 'fastrbd'),
                        required=True)
    parser.add_argument('--image', required=True,
                        help='an image id, or several separated by commas: '
                        'disk i is made from image i modulo their number')
    parser.add_argument('--count', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--first-alone', action='store_true')
    parser.add_argument('--root-gb', type=int, default=10)
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--conf', default='',
                        help='more nova.conf text, e.g. a [fastclone] part')
    parser.add_argument('--keep', action='store_true',
                        help='leave the disks for the caller to inspect')
    parser.add_argument('--barrier',
                        help='a directory: say ready there, wait for go')
    args = parser.parse_args()

    from fastclone_backend.cache import naming
    ctx = novadisk.start(_settings(args), hooked=args.backend == 'fastrbd')
    _count_nova_work()
    ceph = Ceph()
    before = ceph.names()
    baseline = _rss_mib()
    made = []
    _wait_for_go(args.barrier)
    started_at = time.time()
    try:
        first, times, errors, wall = _run(ctx, args, made)
        ended_at = time.time()
        new = [n for n in ceph.names() - before if ceph.made_here(n)]
        allocated = sum(ceph.allocated(n) for n in new)
        local = _allocated_bytes(args.workdir)
    finally:
        if not args.keep:
            _cleanup(made, args.backend)
        ceph.close()
    result = {
        'backend': args.backend, 'first_ms': first, 'times_ms': times,
        'wall_s': wall, 'failures': len(errors), 'errors': errors[:5],
        'started_at': started_at, 'ended_at': ended_at,
        'downloaded_bytes': COUNTS['downloaded_bytes'],
        'downloads': COUNTS['downloads'],
        'downloads_by_image': dict(DOWNLOADS_BY_IMAGE),
        'conversions': COUNTS['conversions'] + naming.STATS['conversions'],
        'imports': COUNTS['imports'] + naming.STATS['imports'],
        'ceph_allocated_bytes': allocated,
        'local_disk_bytes': local,
        'baseline_rss_mib': baseline,
        'peak_rss_mib': resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024,
        'peak_child_rss_mib': resource.getrusage(
            resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        'disks': [novadisk.root_disk(i).rbd_name for i in made]
        if args.keep and args.backend != 'qcow2' else [],
        'cache_stats': dict(naming.STATS),
        'seconds': dict(naming.SECONDS),
        'first_seconds': FIRST_SECONDS,
    }
    if not args.keep:
        shutil.rmtree(os.path.join(args.workdir, 'instances'),
                      ignore_errors=True)
    print(json.dumps(result), flush=True)
    shutdown_ceph()
    return 0


def shutdown_ceph() -> None:
    """Shut down fastclone's cluster connections before the process exits.

    A process that exits with a connected librados client can abort
    (SIGABRT: boost::bad_get from MonClient::tick, or SIGSEGV) while its
    static destructors run beside librados' live timer thread: seen in 2
    of about 40 fleet hosts before this.
    """
    from fastclone_backend import cluster
    cluster.reset_all()


if __name__ == '__main__':
    sys.exit(main())
