"""A short-lived host that exits with its ceph connection up: test_abort.

``python -m tests.functional.exithost IMAGE_ID MODE [--eventlet]`` (lab
variables set) connects through the process's shared handle
(:func:`fastclone_backend.cluster.handle_for`), watches an object with
:class:`fastclone_backend.wake.Waiting`, clones the Glance image's
snapshot and removes the clone, then exits without shutting anything down,
as ``wakehost`` and nova-compute-fastrbd do.  MODE:

* ``idle``: the watch and the ioctxs closed before the exit; the client
  idle, so the exit hook shuts it down;
* ``watching``: the watch still up on its open ioctx, a daemon thread
  notifying it (its callbacks run while the process exits); the client in
  use, so the exit hook leaves it connected.

--eventlet: monkey-patched first, as nova-compute on eventlet.  Prints
``exiting MODE``.
"""

import argparse
import os
import sys
import threading
import uuid


def _notifying(ioctx, obj: str) -> None:
    import time

    from fastclone_backend import wake
    while True:
        wake.notify(ioctx, obj, timeout_ms=100)
        time.sleep(0.01)   # a green thread yields here


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('image')
    parser.add_argument('mode', choices=('idle', 'watching'))
    parser.add_argument('--eventlet', action='store_true')
    args = parser.parse_args()
    if args.eventlet:
        import eventlet
        eventlet.monkey_patch()
    import rbd

    from fastclone_backend import cluster
    from fastclone_backend import wake

    env = os.environ
    handle = cluster.handle_for(env['FASTCLONE_CEPH_CONF'],
                                env['FASTCLONE_NOVA_RBD_USER'], 10, 10)
    client, vms = handle.open_ioctx(env['FASTCLONE_VMS_POOL'])
    _client, images = handle.open_ioctx(env['FASTCLONE_IMAGES_POOL'])
    obj = 'fastclone-test-exit-%d' % os.getpid()
    vms.write_full(obj, b'')
    waiting = wake.Waiting(vms, obj)
    waiting.wait(0)   # watching now
    clone = 'fastclone-test-exit-%s' % uuid.uuid4().hex[:12]
    rbd.RBD().clone(images, args.image, 'snap', vms, clone, features=1)
    rbd.RBD().remove(vms, clone)
    handle.close_ioctx(client, images)
    if args.mode == 'idle':
        waiting.close()
        vms.remove_object(obj)
        handle.close_ioctx(client, vms)
    else:
        threading.Thread(target=_notifying, args=(vms, obj),
                         daemon=True).start()
        waiting.wait(5)   # woken by the first notify
    print('exiting %s' % args.mode, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
