"""One lifecycle pass over many cached bases, in its own process.

``python -m benchmarks.lifecycle --bases N --workdir DIR`` parses a
nova.conf like nova-compute-fastrbd, makes N Glance image records and N
cached bases stamped with them (a tenth of the images then deleted in
Glance, a tenth of the bases given a clone), and times two forced passes
through the real code (``lifecycle.run_pass``): the first has work (retire
and remove the deleted images' bases), the second is the steady state.
For each: seconds, RADOS operations (the OSDs' ``osd.op`` counters, read
as the lab's admin user) and Glance GETs.  Everything it made is removed.
Prints one JSON line.
"""

import argparse
import concurrent.futures
import json
import subprocess
import sys
import time

from fastclone_lab import labkit

MiB = 1 << 20
THREADS = 8


def osd_ops() -> int:
    """Operations all OSDs have served so far."""
    def ceph(*args):
        out = subprocess.run(
            ['ceph', '--conf', labkit.env('FASTCLONE_CEPH_CONF'), '--id',
             labkit.env('FASTCLONE_CEPH_ADMIN_USER'), '-f', 'json'] +
            list(args), check=True, capture_output=True, timeout=60).stdout
        return json.loads(out)
    return sum(ceph('tell', 'osd.%d' % osd, 'perf', 'dump')['osd']['op']
               for osd in ceph('osd', 'ls'))


class Bench:
    def __init__(self, ctx, count):
        from nova.virt.libvirt import imagebackend
        import rados
        self.ctx = ctx
        self.count = count
        self.api = imagebackend.IMAGE_API
        self.glance = labkit.glance()
        self.client = rados.Rados(
            conffile=labkit.env('FASTCLONE_CEPH_CONF'),
            rados_id=labkit.env('FASTCLONE_NOVA_RBD_USER'))
        self.client.connect(timeout=15)
        self.ioctx = self.client.open_ioctx(labkit.env('FASTCLONE_VMS_POOL'))
        self.image_ids = []
        self.clones = []

    def _base(self, index):
        import rbd

        from fastclone_backend import basestore
        from fastclone_backend import cache
        image_id = self.image_ids[index]
        meta = self.api.get(self.ctx, image_id)
        name = cache.base_name(image_id)
        rbd.RBD().create(self.ioctx, name, 4 * MiB)
        with rbd.Image(self.ioctx, name) as img:
            for key, value in cache.fingerprint(meta).items():
                img.metadata_set(key, value)
            img.metadata_set(cache.META + 'last_used', basestore.stamp())
            img.create_snap(cache.SNAP)
        if index % 10 == 1:
            clone = 'fastclone-bench-clone-%d' % index
            rbd.RBD().clone(self.ioctx, name, cache.SNAP, self.ioctx, clone)
            self.clones.append(clone)

    def setup(self) -> int:
        """The images and bases; returns how many images were deleted.

        Glance writes one at a time (the lab's Glance is on sqlite).
        """
        for index in range(self.count):
            self.image_ids.append(self.glance.images.create(
                name='fastclone-bench-lifecycle-%d' % index,
                disk_format='raw', container_format='bare').id)
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(self._base, range(self.count)))
        doomed = self.image_ids[::10]
        for image_id in doomed:
            self.glance.images.delete(image_id)
        return len(doomed)

    def one_pass(self):
        from fastclone_backend import cluster
        from fastclone_backend import lifecycle
        get = self.api.get
        calls = [0]

        def counted(*args, **kwargs):
            calls[0] += 1
            return get(*args, **kwargs)
        self.api.get = counted
        ops = osd_ops()
        start = time.perf_counter()
        try:
            report = lifecycle.run_pass(self.ctx,
                                        cluster.SharedRBDDriver(),
                                        force=True)
        finally:
            self.api.get = get
        seconds = time.perf_counter() - start
        return {'seconds': seconds, 'rados_ops': osd_ops() - ops,
                'glance_gets': calls[0],
                'retired': len(report['retired']),
                'removed': len(report['removed'])}

    def cleanup(self):
        import rbd
        for clone in self.clones:
            rbd.RBD().remove(self.ioctx, clone)
        alive = [i for n, i in enumerate(self.image_ids) if n % 10]
        labkit.remove_images(self.glance, alive)
        self.ioctx.close()
        self.client.shutdown()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--bases', type=int, required=True)
    parser.add_argument('--workdir', required=True)
    args = parser.parse_args()

    from fastclone_lab import novadisk
    ctx = novadisk.start(novadisk.settings_from_env(args.workdir))
    bench = Bench(ctx, args.bases)
    start = time.perf_counter()
    try:
        deleted = bench.setup()
        setup_s = time.perf_counter() - start
        first = bench.one_pass()
        steady = bench.one_pass()
    finally:
        bench.cleanup()
    print(json.dumps({'bases': args.bases, 'deleted_images': deleted,
                      'with_clones': len(bench.clones), 'setup_s': setup_s,
                      'first': first, 'steady': steady}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
