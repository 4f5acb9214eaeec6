"""One lifecycle pass over many cached bases, in its own process.

``python -m benchmarks.lifecycle --bases N [--deleted D] [--with-clones C]
--workdir DIR`` parses a nova.conf like nova-compute-fastrbd, makes N Glance
image records and N cached bases published for them the way a population
publishes one (``BaseStore.publish``), deletes D of the images in Glance
and gives C other bases a clone (default: a tenth each), and times three
forced passes through the real code (``runner.run_pass``): the first has
work (retire and remove the deleted images' bases), the second is the
steady state, the third runs without the base index (removed first: as
the first pass after the upgrade that brought it, or after losing it),
opening every base and indexing it again.  For each: seconds, RADOS
operations (the OSDs' ``osd.op`` counters, read as the lab's admin user)
in all and per base, Glance requests (every HTTP request this process sent
to Glance, by method), and how many cached images the pass opened (the
others came from the base index).  Everything it made is removed.  Prints
one JSON line.
"""

import argparse
import collections
import concurrent.futures
import json
import sys
import time
import uuid

from benchmarks import osdstats
from fastclone_lab import labkit

MiB = 1 << 20
THREADS = 8
# the lab's Glance is on sqlite: concurrent creates work, concurrent
# deletes fail ("database is locked") and may leave an image half deleted
CREATE_THREADS = 4


class GlanceRequests:
    """Counts the HTTP requests this process sends to Glance, by method.

    At the bottom of the HTTP stack (requests' adapter), whatever the pass
    uses above it: Nova's image API, glanceclient, a list or a GET.
    """

    def __init__(self, url: str):
        self.url = url.rstrip('/')
        self.counts = collections.Counter()

    def install(self) -> None:
        from requests import adapters
        send = adapters.HTTPAdapter.send
        counter = self

        def counted(adapter, request, *args, **kwargs):
            if request.url.startswith(counter.url):
                counter.counts[request.method] += 1
            return send(adapter, request, *args, **kwargs)
        adapters.HTTPAdapter.send = counted

    def snapshot(self) -> collections.Counter:
        return collections.Counter(self.counts)


class Bench:
    def __init__(self, ctx, count, deleted, with_clones):
        from nova.virt.libvirt import imagebackend
        import rados

        from fastclone_backend.cache import basestore
        from fastclone_backend import cluster
        self.ctx = ctx
        self.count = count
        self.deleted = deleted
        self.with_clones = with_clones
        self.api = imagebackend.IMAGE_API
        self.glance = labkit.glance()
        self.store = basestore.BaseStore(cluster.SharedRBDDriver())
        self.client = rados.Rados(
            conffile=labkit.env('FASTCLONE_CEPH_CONF'),
            rados_id=labkit.env('FASTCLONE_NOVA_RBD_USER'))
        self.client.connect(timeout=15)
        self.ioctx = self.client.open_ioctx(labkit.env('FASTCLONE_VMS_POOL'))
        self.image_ids = []
        self.clones = []

    def _create_image(self, index: int) -> str:
        return self.glance.images.create(
            name='fastclone-bench-lifecycle-%d' % index,
            disk_format='raw', container_format='bare').id

    def _base(self, index, image_id):
        """A base published for image index, as a population does."""
        import rbd

        from fastclone_backend.cache import naming
        meta = self.api.get(self.ctx, image_id)
        tmp = naming.tmp_name(image_id, uuid.uuid4().hex[:8])
        rbd.RBD().create(self.ioctx, tmp, 4 * MiB)
        self.store.publish(tmp, meta)
        if self.deleted <= index < self.deleted + self.with_clones:
            clone = 'fastclone-bench-clone-%d' % index
            rbd.RBD().clone(self.ioctx, naming.base_name(image_id),
                            naming.SNAP, self.ioctx, clone)
            self.clones.append(clone)

    def setup(self) -> int:
        """The images and bases; returns how many images were deleted.

        The first `deleted` images are deleted in Glance, the next
        `with_clones` bases get a clone.
        """
        made = []
        with concurrent.futures.ThreadPoolExecutor(THREADS) as makers:
            # each base as soon as its image is made: Glance's part and
            # Ceph's overlap
            with concurrent.futures.ThreadPoolExecutor(
                    CREATE_THREADS) as creators:
                for index, image_id in enumerate(creators.map(
                        self._create_image, range(self.count))):
                    self.image_ids.append(image_id)
                    made.append(makers.submit(self._base, index, image_id))
            for future in made:
                future.result()
        self._delete_images(self.image_ids[:self.deleted])
        return self.deleted

    def _delete_images(self, image_ids) -> None:
        for image_id in image_ids:  # one at a time: see CREATE_THREADS
            self.glance.images.delete(image_id)

    def one_pass(self, ceph, requests):
        from fastclone_backend import cluster
        from fastclone_backend.lifecycle import runner
        before, sent = ceph.counters(), requests.snapshot()
        start = time.perf_counter()
        report = runner.run_pass(self.ctx, cluster.SharedRBDDriver(),
                                 force=True)
        seconds = time.perf_counter() - start
        by_method = requests.snapshot() - sent
        ops = osdstats.delta(before, ceph.counters())['ops']
        return {'seconds': seconds, 'rados_ops': ops,
                'rados_ops_per_base': round(ops / self.count, 3),
                'glance_requests': sum(by_method.values()),
                'glance_gets': by_method['GET'],
                'glance_by_method': dict(by_method),
                'opened': report.get('opened'),
                'retired': len(report['retired']),
                'removed': len(report['removed'])}

    def lose_index(self) -> None:
        """Remove the base index, as before the upgrade that brought it."""
        from fastclone_backend.cache import naming
        self.ioctx.remove_object(naming.INDEX_OBJECT)

    def _drop_base(self, image_id) -> None:
        from fastclone_backend.cache import naming
        for name in self.store.names(naming.base_name(image_id)):
            retired = self.store.retire(name, 'benchmark cleanup')
            if retired:
                self.store.remove(retired)

    def cleanup(self):
        import rbd
        alive = self.image_ids[self.deleted:]
        with concurrent.futures.ThreadPoolExecutor(1) as glance:
            # Glance's part in one thread, meanwhile Ceph's
            deleting = glance.submit(self._delete_images, alive)
            with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(lambda c: rbd.RBD().remove(self.ioctx, c),
                              self.clones))
                list(pool.map(self._drop_base, alive))
            deleting.result()
        self.ioctx.close()
        self.client.shutdown()


def progress(what: str, figures) -> None:
    """A line on stderr as each phase ends (the JSON line comes last)."""
    print('lifecycle: %s %s' % (what, json.dumps(figures)),
          file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--bases', type=int, required=True)
    parser.add_argument('--deleted', type=int,
                        help='of them, images deleted in Glance '
                        '(default: a tenth)')
    parser.add_argument('--with-clones', type=int,
                        help='of the others, bases with a clone '
                        '(default: a tenth)')
    parser.add_argument('--workdir', required=True)
    args = parser.parse_args()
    deleted = args.bases // 10 if args.deleted is None else args.deleted
    clones = args.bases // 10 if args.with_clones is None else \
        args.with_clones
    if deleted + clones > args.bases:
        parser.error('--deleted + --with-clones > --bases')

    from fastclone_lab import novadisk
    requests = GlanceRequests(labkit.env('FASTCLONE_GLANCE_URL'))
    requests.install()
    ctx = novadisk.start(novadisk.settings_from_env(args.workdir))
    bench = Bench(ctx, args.bases, deleted, clones)
    ceph = osdstats.Cluster()
    start = time.perf_counter()
    try:
        bench.setup()
        setup_s = time.perf_counter() - start
        progress('setup_s', setup_s)
        first = bench.one_pass(ceph, requests)
        progress('first', first)
        steady = bench.one_pass(ceph, requests)
        progress('steady', steady)
        bench.lose_index()
        unindexed = bench.one_pass(ceph, requests)
        progress('unindexed', unindexed)
    finally:
        ceph.close()
        bench.cleanup()
    from benchmarks import worker
    worker.shutdown_ceph()   # before exit, as a worker does
    print(json.dumps({'bases': args.bases, 'deleted_images': deleted,
                      'with_clones': len(bench.clones), 'setup_s': setup_s,
                      'cleanup_s': time.perf_counter() - start - setup_s -
                      first['seconds'] - steady['seconds'] -
                      unindexed['seconds'],
                      'first': first, 'steady': steady,
                      'unindexed': unindexed}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
