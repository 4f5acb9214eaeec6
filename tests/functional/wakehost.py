"""A compute "host" for the wake-up tests: one root disk, timestamps.

``python -m tests.functional.wakehost --workdir DIR --image ID [--hold-publish
N] [--lose-notify]`` makes one root disk through Nova's own code
(:mod:`fastclone_lab.novadisk`) with the default ``[fastclone]`` options and
prints one JSON line: when the disk was ready (``finished``, wall clock),
when the spawn had the base to clone it from (``ensured``: the end of its
wait on another host's population, if it waited), when this host published
the image's base (``published``, if it did), and what each wait of the
spawn on another host's population returned (``waits``: True woken, False
the poll interval ran out).

--hold-publish N: this host, populating, publishes the base only once N
spawns watch the lock (they wait on it, ``rados listwatchers``), so that the
measure is of waking them, not of when they started.  --lose-notify: the
notify that wakes them is never sent (a lost notify).
"""

import argparse
import json
import os
import subprocess
import time

from fastclone_lab import novadisk


def _watchers(obj: str) -> int:
    env = os.environ
    out = subprocess.run(
        ['rados', '-c', env['FASTCLONE_CEPH_CONF'], '--id',
         env['FASTCLONE_NOVA_RBD_USER'], '-p', env['FASTCLONE_VMS_POOL'],
         'listwatchers', obj], capture_output=True, text=True, timeout=30)
    return len([line for line in out.stdout.splitlines()
                if line.startswith('watcher=')])


def _hold_publish(record: dict, count: int) -> None:
    """Publish only once count spawns wait; record when it was done."""
    from fastclone_backend.cache import basestore
    from fastclone_backend.cache import naming
    publish = basestore.BaseStore.publish

    def held(store, tmp, image_meta):
        deadline = time.monotonic() + 120
        obj = naming.lock_object(image_meta['id'])
        while _watchers(obj) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        result = publish(store, tmp, image_meta)
        record['published'] = time.time()
        return result
    basestore.BaseStore.publish = held


def _record_waits(record: dict) -> None:
    from fastclone_backend import wake
    wait = wake.Waiting.wait
    record['waits'] = []

    def recorded(waiting, timeout):
        woken = wait(waiting, timeout)
        record['waits'].append(woken)
        return woken
    wake.Waiting.wait = recorded


def _record_ensured(record: dict) -> None:
    from fastclone_backend.cache import populate
    ensure = populate.Populator.ensure

    def recorded(populator, *args, **kwargs):
        found = ensure(populator, *args, **kwargs)
        record['ensured'] = time.time()
        return found
    populate.Populator.ensure = recorded


def _lose_notify() -> None:
    from fastclone_backend import wake
    wake.notify = lambda *args, **kwargs: None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--image', required=True)
    parser.add_argument('--hold-publish', type=int, default=0)
    parser.add_argument('--lose-notify', action='store_true')
    args = parser.parse_args()
    ctx = novadisk.start(novadisk.settings_from_env(args.workdir))
    record = {}
    if args.hold_publish:
        _hold_publish(record, args.hold_publish)
    if args.lose_notify:
        _lose_notify()
    _record_waits(record)
    _record_ensured(record)
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(ctx, instance, args.image)
    record.update(finished=time.time(), disk=disk.rbd_name)
    print(json.dumps(record))


if __name__ == '__main__':
    main()
