"""Guests booted through Nova's API: fastrbd against stock Nova, timed.

``python -m benchmarks.boot [--servers N | --max] [--out DIR] [--readme
README.rst]`` with the variables of ``tools/lab env`` of a cloud tier
started with ``tools/lab up --cloud --with-qcow2`` (``tools/bench --boot``
does all that).  For each backend (fastrbd on fast1 and fast2, stock Nova
``images_type = rbd`` on stock1, stock ``images_type = qcow2`` on stockq)
and each image (alpha raw and alpha qcow2, both in Glance's rbd store, each
uploaded once per run), N servers are created at once through the API and
timed from each create request to ACTIVE and to the guest's marker line on
its console; then deleted before the next group.  Per group: Ceph written
(the vms pool's stored bytes before and after), Glance downloads (its
request log), conversions and imports (qemu-img / rbd processes of this
lab).  The limit, in the same run: the same guest booted by plain QEMU from
the local raw file, one at a time and N at once.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time

from benchmarks import bootreport
from benchmarks import run as benchrun
from fastclone_lab import cloudboot
from fastclone_lab import guest

GiB = 1 << 30
# what one guest costs the machine: 128 MiB of guest RAM, QEMU and TCG
GUEST_MIB = 256
RESERVE_MIB = 4096
SMOKE_SERVERS = 3
BACKENDS = {
    'fastrbd': cloudboot.FASTRBD_HOSTS,
    'stock rbd': cloudboot.STOCK_RBD_HOSTS,
    'stock qcow2': cloudboot.STOCK_QCOW2_HOSTS,
}
IMAGES = ('raw', 'qcow2')


def mem_available_mib() -> int:
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) // 1024
    raise RuntimeError('no MemAvailable in /proc/meminfo')


def capacity(available_mib: int, guest_mib: int = GUEST_MIB,
             reserve_mib: int = RESERVE_MIB) -> int:
    """How many guests at once this machine holds (memory-bound)."""
    return max(1, (available_mib - reserve_mib) // guest_mib)


def plan(backends: list, up: set) -> list:
    """[(backend, hosts, image kind)]; every host asked for must be up."""
    missing = sorted({h for b in backends for h in BACKENDS[b]} - up)
    if missing:
        raise SystemExit('computes not up: %s (tools/lab up --cloud '
                         '--with-qcow2; tools/lab status)' % missing)
    return [(b, BACKENDS[b], kind) for b in backends for kind in IMAGES]


class Group:
    """One backend and image: its boots and what they cost the cluster."""

    def __init__(self, ctx, backend, hosts, image):
        self.ctx, self.backend, self.hosts, self.image = (
            ctx, backend, hosts, image)

    def run(self, count: int) -> dict:
        ctx = self.ctx
        time.sleep(ctx.settle)
        before = cloudboot.vms_stored(ctx.conf)
        glance_log = cloudboot.LogTail(ctx.glance_log)
        start = time.monotonic()
        with cloudboot.ProcWatch(ctx.lab_dir) as procs:
            boots = cloudboot.boot_group(
                ctx.conn, list(self.hosts), self.image, count,
                ctx.flavor_id, ctx.nova, ctx.tag, ctx.timeout,
                on_event=ctx.on_event)
        wall = time.monotonic() - start
        time.sleep(ctx.settle)
        after = cloudboot.vms_stored(ctx.conf)
        downloads, downloaded = cloudboot.glance_downloads(
            glance_log.read(), [self.image.id])
        left = cloudboot.delete_servers(ctx.conn, boots)
        counts = procs.counts()
        return {'backend': self.backend, 'image': self.image.kind,
                'hosts': list(self.hosts), 'servers': count,
                'wall_s': wall, 'boots': [b.as_dict() for b in boots],
                'ceph_written_bytes': max(0, after - before),
                'downloads': downloads, 'downloaded_bytes': downloaded,
                'conversions': counts['conversion'],
                'imports': counts['import'], 'not_deleted': left}


class Context:
    def __init__(self, env, args, log):
        self.conn = cloudboot.connect(env)
        self.conf = env['FASTCLONE_CEPH_CONF']
        self.lab_dir = env['FASTCLONE_LAB_DIR']
        self.glance_log = os.path.join(self.lab_dir, 'glance', 'log',
                                       'uwsgi.log')
        self.nova = cloudboot.nova_dir(env)
        self.flavor_id = self.conn.compute.find_flavor(
            env['FASTCLONE_LAB_CLOUD_FLAVOR'], ignore_missing=False).id
        self.tag = time.strftime('%H%M%S')
        self.timeout = args.timeout
        self.settle = args.settle
        self.log = log

    def on_event(self, boot, what):
        if what == 'failed':
            self.log('%s on %s (%s): %s' % (boot.server_id or '-', boot.host,
                                            boot.image, boot.error))


def plain_limit(raw: str, count: int, repeat: int, timeout: float) -> dict:
    """The guest's boot to its marker by plain QEMU from the local file.

    timeout: the groups' own (--timeout): N guests at once under TCG take
    as long as N servers do (67 at once: over 300 s each).
    """
    one = [guest.boot_plain(raw).seconds for _ in range(repeat)]
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        boots = list(pool.map(
            lambda _: guest.boot_plain(raw, timeout=timeout), range(count)))
    at_once = [b.seconds for b in boots]
    return {'one_s': one, 'at_once_s': at_once, 'at_once': count,
            'at_once_failures': sum(1 for b in boots if b.marker is None),
            'timeout_s': timeout}


def measure_limit(args, count: int, log) -> dict:
    """plain_limit of the lab's raw guest, as the options ask."""
    raw = os.path.join(args.guest_cache, 'alpha.raw')
    log('limit: plain QEMU from %s, %d alone, %d at once' % (
        raw, args.limit_repeat, count))
    return plain_limit(raw, count, args.limit_repeat, args.timeout)


def limit_again(args, log) -> dict:
    """The results in --out with their limit measured again (--limit-only).

    For a run whose limit did not measure (a timeout too short); the
    results say it was not measured in the same run as the groups.
    """
    with open(os.path.join(args.out, bootreport.JSON)) as f:
        results = json.load(f)
    results['limit'] = measure_limit(args, results['config']['servers'],
                                     log)
    results['limit']['measured_again'] = time.strftime('%Y-%m-%d %H:%M UTC',
                                                       time.gmtime())
    return results


def run(args, env, log) -> dict:
    ctx = Context(env, args, log)
    wanted = {h for b in args.backends for h in BACKENDS[b]}
    groups = plan(args.backends,
                  cloudboot.up_hosts_awaited(ctx.conn, wanted))
    cloudboot.unlimited_quotas(ctx.conn)
    count = args.servers
    results = {'machine': benchrun.machine(), 'groups': [],
               'config': {'servers': count, 'max': args.max,
                          'flavor': env['FASTCLONE_LAB_CLOUD_FLAVOR'],
                          'timeout_s': args.timeout,
                          'label': args.label}}
    images = cloudboot.upload_images(ctx.conn, args.guest_cache, ctx.tag)
    try:
        for backend, hosts, kind in groups:
            log('%s, %s image: %d servers at once on %s' % (
                backend, kind, count, ','.join(hosts)))
            result = Group(ctx, backend, hosts, images[kind]).run(count)
            results['groups'].append(result)
            log('  ' + bootreport.one_line(result))
    finally:
        cloudboot.delete_images(ctx.conn, images)
    results['limit'] = measure_limit(args, count, log)
    return results


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--servers', type=int, default=20,
                        help='servers per backend and image, at once')
    parser.add_argument('--smoke', action='store_true',
                        help='%d servers per group, --limit-repeat 1, '
                        'results in a temporary directory, no README'
                        % SMOKE_SERVERS)
    parser.add_argument('--max', action='store_true',
                        help='as many at once as this machine holds '
                        '(MemAvailable - %d MiB) / %d MiB' % (RESERVE_MIB,
                                                              GUEST_MIB))
    parser.add_argument('--backends', nargs='+', choices=list(BACKENDS),
                        default=list(BACKENDS))
    parser.add_argument('--timeout', type=float, default=900,
                        help='seconds for a group to reach its markers')
    parser.add_argument('--settle', type=float, default=10,
                        help='seconds for ceph df to catch up (pg stats)')
    parser.add_argument('--limit-repeat', type=int, default=3)
    parser.add_argument('--limit-only', action='store_true',
                        help='measure only the plain-QEMU limit again, for '
                        'the servers of the results in --out, and rewrite '
                        'them (no cloud tier needed)')
    parser.add_argument('--guest-cache', default=None,
                        help='where the guest images are built (default: '
                        '$FASTCLONE_LAB_DIR/guest)')
    parser.add_argument('--label', default='',
                        help='a note shown with the results, e.g. "loaded '
                        'machine"')
    parser.add_argument('--out', default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'results'))
    parser.add_argument('--readme', help='README.rst to update')
    args = parser.parse_args(argv)
    if args.smoke and (args.readme or args.max):
        parser.error('--smoke writes no README and boots %d per group'
                     % SMOKE_SERVERS)
    if args.smoke:
        args.servers, args.limit_repeat = SMOKE_SERVERS, 1
        args.out = tempfile.mkdtemp(prefix='fastclone-boot-')
        args.label = args.label or 'smoke run'
    if args.max:
        args.servers = capacity(mem_available_mib())
    return args


def main(argv=None):
    args = parse(argv)
    env = dict(os.environ)
    args.guest_cache = args.guest_cache or os.path.join(
        env['FASTCLONE_LAB_DIR'], 'guest')
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()

    def log(msg):
        print('[boot %6.1fs] %s' % (time.perf_counter() - start, msg),
              file=sys.stderr, flush=True)
    if args.limit_only:
        results = limit_again(args, log)
    else:
        results = run(args, env, log)
        results['duration_s'] = time.perf_counter() - start
    bootreport.write(results, args.out, args.readme)
    print(bootreport.markdown(results))
    log('wrote %s' % os.path.join(args.out, bootreport.JSON))
    return 0 if not bootreport.failures(results) else 1


if __name__ == '__main__':
    sys.exit(main())
