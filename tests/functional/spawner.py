"""Another compute "host": its own process and instances path.

``python -m tests.functional.spawner --image ID --count N --threads T
--workdir DIR [--conf 'extra nova.conf text']`` parses a nova.conf with
fastrbd, creates N root disks from the image through Nova's code (T at a
time) and prints one JSON line: the cache counters, the disks made, the
errors.  The lab is named by the FASTCLONE_* environment variables.
"""

import argparse
import concurrent.futures
import json
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--image', required=True)
    parser.add_argument('--count', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--root-gb', type=int, default=1)
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--conf', default='')
    args = parser.parse_args()

    from fastclone_backend import cache
    from fastclone_backend import novaflow

    ctx = novaflow.start(novaflow.settings_from_env(args.workdir, args.conf))

    def spawn(_):
        instance = novaflow.make_instance(args.root_gb)
        return novaflow.create_root_disk(ctx, instance, args.image).rbd_name

    disks, errors = [], []
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        for future in [pool.submit(spawn, i) for i in range(args.count)]:
            try:
                disks.append(future.result())
            except Exception as e:
                errors.append('%s: %s' % (type(e).__name__, e))
    print(json.dumps({'stats': dict(cache.STATS), 'disks': disks,
                      'errors': errors}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
