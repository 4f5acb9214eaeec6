"""Nova's image precache through its real compute manager, in a process.

``python -m tests.functional.precachehost --workdir DIR IMAGE_ID...``
parses a nova.conf like nova-compute-fastrbd (the hook installed), makes
Nova's real ``ComputeManager`` with the real ``LibvirtDriver`` (on Nova's
fakelibvirt; placement and RPC clients are never used by
``cache_images``), calls ``cache_images(ctx, ids)`` twice, and prints one
JSON line: both results, the driver's cache_image as hooked, and what is
in the host's ``_base``.

Its own process: importing ``nova.tests.fixtures`` monkey-patches eventlet
into the importing process.
"""

import argparse
import json
import os
from unittest import mock

from fastclone_lab import novadisk


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--workdir', required=True)
    parser.add_argument('images', nargs='+')
    args = parser.parse_args()
    ctx = novadisk.start(novadisk.settings_from_env(args.workdir))

    from nova.compute import manager
    import nova.conf
    from nova.tests.fixtures import libvirt as libvirt_fixture

    fixture = libvirt_fixture.LibvirtFixture()
    fixture.setUp()
    try:
        with mock.patch('nova.scheduler.client.report.SchedulerReportClient',
                        autospec=True), \
                mock.patch('nova.rpc.get_client', autospec=True), \
                mock.patch('nova.rpc.get_notifier', autospec=True), \
                mock.patch('nova.rpc.get_versioned_notifier', autospec=True):
            compute = manager.ComputeManager(
                compute_driver='libvirt.LibvirtDriver')
        hooked = hasattr(compute.driver.cache_image, 'fastclone_original')
        first = compute.cache_images(ctx, args.images)
        again = compute.cache_images(ctx, args.images)
    finally:
        fixture.cleanUp()
    conf = nova.conf.CONF
    base_dir = os.path.join(conf.instances_path,
                            conf.image_cache.subdirectory_name)
    print(json.dumps({
        'hooked': hooked, 'driver': type(compute.driver).__name__,
        'first': first, 'again': again,
        'base_dir': sorted(os.listdir(base_dir))
        if os.path.isdir(base_dir) else None}))


if __name__ == '__main__':
    main()
