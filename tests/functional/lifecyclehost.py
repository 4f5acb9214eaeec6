"""One more compute "host" for the lifecycle tests, in its own process.

``python -m tests.functional.lifecyclehost [--eventlet] --workdir DIR
[--conf TEXT] ACTION`` parses a nova.conf like nova-compute-fastrbd
(Nova's own monkey patching decides eventlet or native threads first, as
nova-compute does), then:

* ``pass [--force] [--stall-after-submit] [--start-at T]``: one lifecycle
  pass (at time T); prints its report.  ``--stall-after-submit`` stops
  (sleeps) right after the first flatten task is queued, for a kill -9
  mid-pass.
* ``soak --image ID:SHA256:BYTES ... --seconds S``: spawns root disks of
  random images, checks each disk's first BYTES against SHA256, deletes
  some, runs passes, until S seconds are up; prints counts and errors.

Prints one JSON line last.
"""

import argparse
import sys


def _args():
    parser = argparse.ArgumentParser()
    parser.add_argument('--eventlet', action='store_true')
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--conf', default='')
    sub = parser.add_subparsers(dest='action', required=True)
    one = sub.add_parser('pass')
    one.add_argument('--force', action='store_true')
    one.add_argument('--stall-after-submit', action='store_true')
    one.add_argument('--start-at', type=float, default=0,
                     help='wait until this time.time() to start the pass')
    soak = sub.add_parser('soak')
    soak.add_argument('--image', action='append', required=True)
    soak.add_argument('--seconds', type=float, required=True)
    soak.add_argument('--threads', type=int, default=4)
    return parser.parse_args()


ARGS = _args()
# the first Nova import, as in nova-compute
from nova import monkey_patch  # noqa: E402
monkey_patch.patch(backend='eventlet' if ARGS.eventlet else 'threading')

import hashlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from fastclone_backend import cluster  # noqa: E402
from fastclone_backend.lifecycle import flatten  # noqa: E402
from fastclone_backend.lifecycle import runner  # noqa: E402
from fastclone_lab import novadisk  # noqa: E402


def _pass(ctx):
    if ARGS.stall_after_submit:
        submit = flatten.submit

        def stalling(driver, spec):
            task = submit(driver, spec)
            print(json.dumps({'submitted': spec}), flush=True)
            time.sleep(3600)  # the test kills this process here
            return task
        flatten.submit = stalling
    driver = cluster.SharedRBDDriver()
    driver.get_fsid()   # connected before the barrier
    time.sleep(max(0.0, ARGS.start_at - time.time()))
    return runner.run_pass(ctx, driver, force=ARGS.force)


def _read_head(disk, length):
    from nova.storage import rbd_utils
    with rbd_utils.RBDVolumeProxy(disk.driver, disk.rbd_name,
                                  read_only=True) as vol:
        return vol.read(0, length)


class Soak:
    def __init__(self, ctx):
        self.ctx = ctx
        self.images = [spec.split(':') for spec in ARGS.image]
        self.lock = threading.Lock()
        self.counts = {'spawns': 0, 'deletes': 0, 'passes': 0,
                       'mismatches': 0, 'failures': 0}
        self.errors = []
        self.alive = []

    def _count(self, key, error=None):
        with self.lock:
            self.counts[key] += 1
            if error and len(self.errors) < 10:
                self.errors.append(error)

    def spawn_one(self):
        image_id, digest, length = random.choice(self.images)
        instance = novadisk.make_instance(1)
        try:
            disk = novadisk.create_root_disk(self.ctx, instance, image_id)
            head = _read_head(disk, int(length))
        except Exception as e:
            self._count('failures', 'spawn %s: %s: %s' % (
                image_id, type(e).__name__, e))
            return
        self._count('spawns')
        if hashlib.sha256(head).hexdigest() != digest:
            self._count('mismatches', 'disk %s of %s: wrong bytes'
                        % (disk.rbd_name, image_id))
        with self.lock:
            self.alive.append(instance)

    def delete_some(self):
        with self.lock:
            random.shuffle(self.alive)
            doomed, self.alive = self.alive[:2], self.alive[2:]
        for instance in doomed:
            novadisk.delete_instance_disks(instance)
            self._count('deletes')

    def worker(self, deadline):
        while time.monotonic() < deadline:
            roll = random.random()
            if roll < 0.6:
                self.spawn_one()
            elif roll < 0.9:
                self.delete_some()
            else:
                runner.run_pass(self.ctx, cluster.SharedRBDDriver(),
                                force=True)
                self._count('passes')

    def run(self):
        deadline = time.monotonic() + ARGS.seconds
        threads = [threading.Thread(target=self.worker, args=(deadline,))
                   for _ in range(ARGS.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for instance in self.alive:
            novadisk.delete_instance_disks(instance)
            self._count('deletes')
        return dict(self.counts, errors=self.errors)


def main():
    from nova import utils
    settings = novadisk.settings_from_env(ARGS.workdir, ARGS.conf)
    ctx = novadisk.start(settings)
    result = _pass(ctx) if ARGS.action == 'pass' else Soak(ctx).run()
    result['threading'] = utils.concurrency_mode_threading()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
