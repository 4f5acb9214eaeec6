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

"""``fastclone-demo``: instance root disks from a Glance image on the lab.

Uploads a raw image to Glance's rbd store, shows its location, times the
bare librbd clone, then creates N instance root disks through Nova's real
image-backend code with ``images_type = fastrbd`` and prints each disk's
time.  Everything it creates is removed at the end.  Reads the lab's
settings from the environment (``eval "$(tools/lab env)"``).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

MiB = 1 << 20


def _env(name):
    try:
        return os.environ[name]
    except KeyError:
        sys.exit('fastclone-demo: %s is not set; run it through tools/demo '
                 'or after eval "$(tools/lab env)"' % name)


def _upload(glance, size):
    image = glance.images.create(name='fastclone-demo', disk_format='raw',
                                 container_format='bare')
    with tempfile.TemporaryFile() as f:
        f.write(os.urandom(size))
        f.seek(0)
        glance.images.upload(image.id, f,
                             backend=_env('FASTCLONE_GLANCE_RBD_STORE'))
    return glance.images.get(image.id)


def _librbd_clone_ms(image_id, repeat=5):
    """The bare primitive: one librbd clone (and its removal, untimed)."""
    import rados
    import rbd
    client = rados.Rados(conffile=_env('FASTCLONE_CEPH_CONF'),
                         rados_id=_env('FASTCLONE_NOVA_RBD_USER'))
    client.connect(timeout=15)
    try:
        src = client.open_ioctx(_env('FASTCLONE_IMAGES_POOL'))
        dst = client.open_ioctx(_env('FASTCLONE_VMS_POOL'))
        times = []
        for i in range(repeat):
            name = 'fastclone-demo-primitive-%d' % i
            start = time.perf_counter()
            rbd.RBD().clone(src, image_id, 'snap', dst, name)
            times.append((time.perf_counter() - start) * 1000)
            rbd.RBD().remove(dst, name)
        src.close()
        dst.close()
        return statistics.median(times)
    finally:
        client.shutdown()


def _create_disks(ctx, image_id, count, root_gb):
    from fastclone_backend import novaflow
    made, times = [], []
    try:
        for i in range(count):
            instance = novaflow.make_instance(root_gb)
            start = time.perf_counter()
            disk = novaflow.create_root_disk(ctx, instance, image_id)
            times.append((time.perf_counter() - start) * 1000)
            made.append(instance)
            print('  disk %2d  vms/%s  %7.1f ms'
                  % (i + 1, disk.rbd_name, times[-1]))
    finally:
        for instance in made:
            novaflow.delete_instance_disks(instance)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--disks', type=int, default=10)
    parser.add_argument('--image-mib', type=int, default=256)
    parser.add_argument('--root-gb', type=int, default=10)
    args = parser.parse_args(argv)

    import glanceclient

    from fastclone_backend import novaflow

    glance = glanceclient.Client('2', endpoint=_env('FASTCLONE_GLANCE_URL'),
                                 token=_env('FASTCLONE_GLANCE_TOKEN'))
    print('ceph fsid:      %s' % _env('FASTCLONE_CEPH_FSID'))
    start = time.perf_counter()
    image = _upload(glance, args.image_mib * MiB)
    print('glance image:   %s (raw, %d MiB, uploaded in %.2f s)'
          % (image.id, args.image_mib, time.perf_counter() - start))
    print('location:       %s' % image.direct_url)
    try:
        primitive = _librbd_clone_ms(image.id)
        print('librbd clone:   %.1f ms (median of 5, the physical limit)'
              % primitive)
        workdir = tempfile.mkdtemp(prefix='fastclone-demo-')
        ctx = novaflow.start(novaflow.Settings(
            ceph_conf=_env('FASTCLONE_CEPH_CONF'),
            rbd_user=_env('FASTCLONE_NOVA_RBD_USER'),
            pool=_env('FASTCLONE_VMS_POOL'),
            glance_url=_env('FASTCLONE_GLANCE_URL'),
            glance_token=_env('FASTCLONE_GLANCE_TOKEN'), workdir=workdir))
        print('%d instance root disks (%d GiB) through Nova with '
              'images_type = fastrbd:' % (args.disks, args.root_gb))
        times = _create_disks(ctx, image.id, args.disks, args.root_gb)
        print('per disk:       median %.1f ms, max %.1f ms = %.2fx the '
              'librbd clone' % (statistics.median(times), max(times),
                                statistics.median(times) / primitive))
    finally:
        glance.images.delete(image.id)
    return 0


if __name__ == '__main__':
    sys.exit(main())
