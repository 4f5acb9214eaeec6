#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""The demo (``tools/demo``): root disks from Glance images on the lab.

1. A raw image in Glance's rbd store: its location, the bare librbd clone
   time, then N root disks made through Nova's real image-backend code with
   ``images_type = fastrbd`` (clones in place).
2. A qcow2 image: the first root disk populates the cluster-wide cache
   (download, inspect, convert once), the next N are clones of it.

Everything it creates is removed at the end.  Reads the lab's settings
from the environment (``eval "$(tools/lab env)"``).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from fastclone_lab import labkit

MiB = 1 << 20


def _upload(glance, path, disk_format):
    start = time.perf_counter()
    image = labkit.upload(glance, path, disk_format)
    print('glance image:   %s (%s, %.0f MiB, uploaded in %.2f s)'
          % (image.id, disk_format, os.path.getsize(path) / MiB,
             time.perf_counter() - start))
    return image


def _create_disks(ctx, image_id, count, root_gb, made, first=1):
    """Create count root disks; returns their times in ms."""
    from fastclone_lab import novadisk
    times = []
    for i in range(count):
        instance = novadisk.make_instance(root_gb)
        start = time.perf_counter()
        disk = novadisk.create_root_disk(ctx, instance, image_id)
        times.append((time.perf_counter() - start) * 1000)
        made.append(instance)
        print('  disk %2d  vms/%s  %8.1f ms'
              % (first + i, disk.rbd_name, times[-1]))
    return times


def _summary(label, times, primitive):
    print('%s median %.1f ms, max %.1f ms = %.2fx the librbd clone'
          % (label, statistics.median(times), max(times),
             statistics.median(times) / primitive))


def _raw_section(ctx, glance, args, workdir, made, cleanup):
    print('== raw image in Glance\'s rbd store: cloned in place')
    raw = labkit.data_file(os.path.join(workdir, 'demo.raw'),
                           args.image_mib, args.image_mib)
    image = _upload(glance, raw, 'raw')
    cleanup.append(image.id)
    print('location:       %s' % image.direct_url)
    primitive = labkit.clone_primitive_ms(image.id, 5)
    print('librbd clone:   %.1f ms (median of 5, the physical limit)'
          % primitive)
    print('%d root disks (%d GiB) through Nova, images_type = fastrbd:'
          % (args.disks, args.root_gb))
    times = _create_disks(ctx, image.id, args.disks, args.root_gb, made)
    _summary('per disk:      ', times, primitive)
    return primitive


def _qcow2_section(ctx, glance, args, workdir, made, cleanup, primitive):
    from fastclone_backend.cache import naming
    qcow2 = labkit.qcow2_of(labkit.data_file(
        os.path.join(workdir, 'demo-q.raw'), args.image_mib, args.image_mib))
    print('== qcow2 image: converted once into the cluster-wide cache')
    image = _upload(glance, qcow2, 'qcow2')
    cleanup.append(image.id)
    before = dict(naming.STATS)
    first = _create_disks(ctx, image.id, 1, args.root_gb, made)
    done = {k: naming.STATS[k] - before.get(k, 0) for k in naming.STATS}
    print('first disk:     %.2f s (cache miss: %d download, %d conversion '
          'into vms/%s)' % (first[0] / 1000, done.get('downloads', 0),
                            done.get('conversions', 0),
                            naming.base_name(image.id)))
    times = _create_disks(ctx, image.id, args.disks - 1, args.root_gb, made,
                          first=2)
    if times:
        _summary('next disks:    ', times, primitive)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--disks', type=int, default=10)
    parser.add_argument('--image-mib', type=int, default=256)
    parser.add_argument('--root-gb', type=int, default=10)
    args = parser.parse_args(argv)

    from fastclone_lab import novadisk

    glance = labkit.glance()
    print('ceph fsid:      %s' % labkit.env('FASTCLONE_CEPH_FSID'))
    workdir = tempfile.mkdtemp(prefix='fastclone-demo-')
    ctx = novadisk.start(novadisk.settings_from_env(workdir))
    made, images = [], []
    try:
        primitive = _raw_section(ctx, glance, args, workdir, made, images)
        _qcow2_section(ctx, glance, args, workdir, made, images, primitive)
    finally:
        for instance in made:
            novadisk.delete_instance_disks(instance)
        labkit.remove_images(glance, images)
        subprocess.run(['rm', '-rf', workdir], check=False)
    return 0


if __name__ == '__main__':
    sys.exit(main())
