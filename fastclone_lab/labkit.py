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

"""Helpers the demo and the benchmarks share: images, Glance, the limits.

The lab (or deployment) is named by the FASTCLONE_* variables that
``tools/lab env`` prints.
"""

import concurrent.futures
import contextlib
import os
import statistics
import subprocess
import time

MiB = 1 << 20


def env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise SystemExit('%s is not set: run this through tools/demo or '
                         'tools/bench, or after eval "$(tools/lab env)"'
                         % name)


def glance():
    import glanceclient
    return glanceclient.Client('2', endpoint=env('FASTCLONE_GLANCE_URL'),
                               token=env('FASTCLONE_GLANCE_TOKEN'))


def data_file(path: str, size_mib: int, data_mib: int) -> str:
    """A size_mib file: data_mib MiB of random bytes, then a hole."""
    with open(path, 'wb') as f:
        for _ in range(data_mib):
            f.write(os.urandom(MiB))
        f.truncate(size_mib * MiB)
    return path


def qcow2_of(raw: str) -> str:
    """qemu-img convert raw -> raw + '.qcow2'; returns its path."""
    path = raw + '.qcow2'
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    path], check=True)
    return path


def upload(client, path: str, disk_format: str, store=None):
    """Upload to Glance (default: its rbd store); returns the image record."""
    image = client.images.create(
        name='fastclone-' + os.path.basename(path), disk_format=disk_format,
        container_format='bare')
    with open(path, 'rb') as f:
        client.images.upload(image.id, f, backend=store or env(
            'FASTCLONE_GLANCE_RBD_STORE'))
    return client.images.get(image.id)


@contextlib.contextmanager
def _glance_and_vms_pools():
    """(images ioctx, vms ioctx) as the compute hosts' user."""
    import rados
    client = rados.Rados(conffile=env('FASTCLONE_CEPH_CONF'),
                         rados_id=env('FASTCLONE_NOVA_RBD_USER'))
    client.connect(timeout=15)
    try:
        with client.open_ioctx(env('FASTCLONE_IMAGES_POOL')) as src, \
                client.open_ioctx(env('FASTCLONE_VMS_POOL')) as dst:
            yield src, dst
    finally:
        client.shutdown()


def _clone(rbd, src, image_id, dst, name, resize_to=0):
    rbd.RBD().clone(src, image_id, 'snap', dst, name)
    if resize_to:
        with rbd.Image(dst, name) as img:
            img.resize(resize_to)


def clone_primitive_ms(image_id: str, repeat: int,
                       resize_to: int = 0) -> float:
    """Median time of a bare librbd clone of images/<id>@snap into vms.

    As the compute hosts' user; each clone is removed, untimed.

    :param resize_to: then grow the clone to this many bytes, as a root
        disk is, within the time.
    """
    import rbd
    times = []
    with _glance_and_vms_pools() as (src, dst):
        for i in range(repeat):
            name = 'fastclone-primitive-%d' % i
            start = time.perf_counter()
            _clone(rbd, src, image_id, dst, name, resize_to)
            times.append((time.perf_counter() - start) * 1000)
            rbd.RBD().remove(dst, name)
    return statistics.median(times)


def root_disk_primitive_ms(client, image_id: str, repeat: int,
                           resize_to: int) -> tuple:
    """(median ms, median ms of its Glance part) of a bare root disk.

    What any root disk of a raw image in Glance's rbd store needs, as Nova
    does it: one Glance GET of the image (with its locations), then the
    librbd clone of images/<id>@snap into vms and the resize to the
    flavor's root disk; each clone is removed, untimed.
    """
    import rbd
    totals, gets = [], []
    with _glance_and_vms_pools() as (src, dst):
        for i in range(repeat):
            name = 'fastclone-primitive-root-%d' % i
            start = time.perf_counter()
            client.images.get(image_id)
            got = time.perf_counter()
            _clone(rbd, src, image_id, dst, name, resize_to)
            totals.append((time.perf_counter() - start) * 1000)
            gets.append((got - start) * 1000)
            rbd.RBD().remove(dst, name)
    return statistics.median(totals), statistics.median(gets)


def clone_primitive_parallel_s(image_id: str, count: int, threads: int,
                               resize_to: int = 0) -> float:
    """Seconds for count bare librbd clones, threads at a time.

    Of images/<id>@snap, on one connection, as the compute hosts' user;
    the clones are removed afterwards, untimed.
    """
    import rbd
    names = ['fastclone-primitive-p%d' % i for i in range(count)]
    with _glance_and_vms_pools() as (src, dst):
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda n: _clone(rbd, src, image_id, dst, n,
                                           resize_to), names))
        seconds = time.perf_counter() - start
        for name in names:
            rbd.RBD().remove(dst, name)
    return seconds


def remove_images(client, image_ids) -> None:
    """Delete Glance images and their cached bases (Nova must be started).

    Call it after the disks cloned from them are gone.
    """
    from fastclone_backend.cache import basestore
    from fastclone_backend.cache import naming
    from fastclone_backend import cluster
    store = basestore.BaseStore(cluster.SharedRBDDriver())
    for image_id in image_ids:
        for name in store.names(naming.base_name(image_id)):
            retired = store.retire(name, 'benchmark cleanup')
            if retired:
                store.remove(retired)
        client.images.delete(image_id)
