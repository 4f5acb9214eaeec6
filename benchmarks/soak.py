"""Boot storms over and over, several hosts at once, to catch an abort.

``python -m benchmarks.soak [--minutes M] [--hosts H] [--disks N]
[--threads T] [--backends fastrbd,rbd] [--mib S] --out DIR`` with the lab's
FASTCLONE_* variables set.  Each round uploads fresh images (raw in the rbd
store, qcow2, raw in the file store: nothing cached yet, so populations,
population locks, liveness watches and wake-up notifies all run), starts H
``benchmarks.worker`` processes at once per backend, each making N disks
T at a time from those images, and waits for them.  Every worker runs with
``PYTHONFAULTHANDLER=1`` and core dumps on, in a directory of its own under
DIR: a worker killed by a signal leaves its core and its threads' Python
stacks (DIR/round-R/host-H/stderr) there.  Rounds go on until M minutes
have passed; one JSON line says how many rounds, workers, disks and aborts.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from fastclone_lab import labkit


def _cores_on():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,
                                              resource.RLIM_INFINITY))


def _images(glance, tmp, mib, data_mib):
    raw = labkit.data_file(os.path.join(tmp, 'soak.raw'), mib, data_mib)
    qcow2 = labkit.qcow2_of(raw)
    ids = [labkit.upload(glance, raw, 'raw').id,
           labkit.upload(glance, qcow2, 'qcow2').id,
           labkit.upload(glance, raw, 'raw',
                         labkit.env('FASTCLONE_GLANCE_FILE_STORE')).id]
    return ids


def _start(backend, ids, args, where):
    os.makedirs(where)
    workdir = tempfile.mkdtemp(prefix='fastclone-soak-')
    cmd = [sys.executable, '-m', 'benchmarks.worker', '--backend', backend,
           '--image', ','.join(ids), '--count', str(args.disks),
           '--threads', str(args.threads), '--workdir', workdir,
           '--root-gb', '1']
    env = dict(os.environ, PYTHONWARNINGS='ignore', PYTHONFAULTHANDLER='1',
               PYTHONPATH=os.pathsep.join(
                   [os.getcwd()] + os.environ.get('PYTHONPATH', '').split(
                       os.pathsep)).rstrip(os.pathsep))
    out = open(os.path.join(where, 'stdout'), 'w')
    err = open(os.path.join(where, 'stderr'), 'w')
    proc = subprocess.Popen(cmd, cwd=where, env=env, stdout=out, stderr=err,
                            preexec_fn=_cores_on)
    return proc, workdir, where


def _outcome(proc, workdir, where):
    rc = proc.wait()
    shutil.rmtree(workdir, ignore_errors=True)
    result = {'rc': rc, 'where': where}
    if rc < 0:
        result['signal'] = signal.Signals(-rc).name
    try:
        with open(os.path.join(where, 'stdout')) as f:
            line = f.read().strip().splitlines()[-1]
        got = json.loads(line)
        result.update(disks=len(got['times_ms']), failures=got['failures'],
                      errors=got['errors'][:2])
    except (IndexError, ValueError, OSError):
        result.update(disks=0, failures=None)
    return result


def _round(n, glance, tmp, args):
    results = []
    for backend in args.backends.split(','):
        ids = _images(glance, tmp, args.mib, args.data_mib)
        procs = [_start(backend, ids, args, os.path.join(
            args.out, 'round-%d' % n, '%s-host-%d' % (backend, h)))
            for h in range(args.hosts)]
        results += [dict(_outcome(*p), backend=backend) for p in procs]
        _cleanup(glance, ids)
    return results


def _cleanup(glance, ids):
    try:
        labkit.remove_images(glance, ids)
    except Exception as e:   # leave them; the lab is disposable
        print('soak: cleanup: %s' % e, file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--minutes', type=float, default=10)
    parser.add_argument('--hosts', type=int, default=3)
    parser.add_argument('--disks', type=int, default=60)
    parser.add_argument('--threads', type=int, default=32)
    parser.add_argument('--backends', default='fastrbd')
    parser.add_argument('--mib', type=int, default=16)
    parser.add_argument('--data-mib', type=int, default=4)
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    glance = labkit.glance()
    from fastclone_lab import novadisk   # for the cleanup of cached bases
    novadisk.start(novadisk.settings_from_env(tempfile.mkdtemp(
        prefix='fastclone-soak-nova-')))
    deadline = time.monotonic() + args.minutes * 60
    start = time.monotonic()
    rounds, results = 0, []
    with tempfile.TemporaryDirectory(prefix='fastclone-soak-') as tmp:
        while time.monotonic() < deadline:
            got = _round(rounds, glance, tmp, args)
            rounds += 1
            results += got
            for r in got:
                if r['rc']:
                    print('soak: round %d: %s' % (rounds, json.dumps(r)),
                          file=sys.stderr, flush=True)
    aborts = [r for r in results if r['rc']]
    print(json.dumps({
        'rounds': rounds, 'workers': len(results),
        'disks': sum(r['disks'] for r in results),
        'failures': sum(r['failures'] or 0 for r in results),
        'aborted': len(aborts), 'abort_details': aborts[:5],
        'minutes': round((time.monotonic() - start) / 60, 1)}))
    return 1 if aborts else 0


if __name__ == '__main__':
    sys.exit(main())
