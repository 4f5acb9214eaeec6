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

"""``tools/demo --boot``: guests booting through Nova, fastrbd against stock.

On the lab's cloud tier (``tools/lab up --cloud``; ``tools/demo --boot``
brings it up and stops it again if it started it): the lab's guest image is
uploaded to Glance's rbd store raw and as qcow2; for each image, N servers
are created at once on the fastrbd computes (fast1, fast2) and N on the
stock compute (stock1, ``images_type = rbd``), through Nova's API with
``networks: none``.  As they go ACTIVE and their guests print the marker
line (the guest's own uuid, the sum of its root disk's first 4 MiB) the demo
says so; then a table: host, image, seconds to ACTIVE, seconds to the
marker, the marker line.  Everything it created (servers, images) is
deleted at the end.  Reads ``tools/lab env`` from the environment.
"""

import argparse
import os
import sys
import time

from fastclone_lab import cloudboot
from fastclone_lab import guest

WHO = {'fast1': 'fastrbd', 'fast2': 'fastrbd', 'stock1': 'stock rbd'}
# the rounds: which computes, booted at once with each image
ROUNDS = (('fastrbd', cloudboot.FASTRBD_HOSTS),
          ('stock rbd', cloudboot.STOCK_RBD_HOSTS))


def _fmt(value) -> str:
    return '-' if value is None else '%.1f' % value


def table(boots: list) -> list:
    """The demo's table as lines: one per server, then per-round medians."""
    lines = ['%-7s %-10s %-6s %9s %9s  %s' % (
        'host', 'backend', 'image', 'ACTIVE s', 'marker s', 'marker line')]
    for b in boots:
        lines.append('%-7s %-10s %-6s %9s %9s  %s' % (
            b.host, WHO.get(b.host, '?'), b.image, _fmt(b.active_s),
            _fmt(b.marker_s), b.marker_line or ('FAILED: ' + b.error)))
    return lines


def medians(boots: list) -> list:
    """'<backend> <image>: median to marker' lines, fastrbd against stock."""
    out = []
    for backend, _ in ROUNDS:
        for kind in ('raw', 'qcow2'):
            times = sorted(b.marker_s for b in boots
                           if WHO.get(b.host) == backend and b.image == kind
                           and b.marker_s is not None and not b.error)
            if times:
                out.append('%-10s %-6s median to marker %5.1f s (%d of them)'
                           % (backend, kind, times[len(times) // 2],
                              len(times)))
    return out


def _say(boot, what):
    if what == 'active':
        print('  %-7s %-6s %s ACTIVE after %.1f s' % (
            boot.host, boot.image, boot.server_id, boot.active_s))
    elif what == 'marker':
        print('  %-7s %-6s %s guest printed its marker after %.1f s' % (
            boot.host, boot.image, boot.server_id, boot.marker_s))
    else:
        print('  %-7s %-6s %s FAILED: %s' % (boot.host, boot.image,
                                             boot.server_id, boot.error))
    sys.stdout.flush()


def run(conn, env, args) -> list:
    nova = cloudboot.nova_dir(env)
    flavor = conn.compute.find_flavor(env['FASTCLONE_LAB_CLOUD_FLAVOR'],
                                      ignore_missing=False)
    tag = 'demo%s' % time.strftime('%H%M%S')
    print('uploading the guest image to Glance (raw and qcow2, rbd store)')
    images = cloudboot.upload_images(conn, args.guest_cache, tag)
    boots = []
    try:
        for kind in ('raw', 'qcow2'):
            for backend, hosts in ROUNDS:
                print('== %d servers, %s image, on %s (%s), at once' % (
                    args.servers, kind, ', '.join(hosts), backend))
                round_boots = cloudboot.boot_group(
                    conn, list(hosts), images[kind], args.servers,
                    flavor.id, nova, tag, args.timeout, on_event=_say)
                boots += round_boots
                cloudboot.delete_servers(conn, round_boots)
    finally:
        print('deleting the servers and images the demo made')
        cloudboot.delete_servers(conn, boots)
        cloudboot.delete_images(conn, images)
    return boots


def missing_computes(conn) -> list:
    """The demo's computes not up, once they had their time to report.

    A compute reports up with its first heartbeat, some seconds after
    'tools/lab up --cloud' says the tier is up.
    """
    return sorted(set(WHO) - cloudboot.up_hosts_awaited(conn, set(WHO)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--servers', type=int, default=3,
                        help='servers per image and backend (default 3)')
    parser.add_argument('--timeout', type=float, default=600)
    parser.add_argument('--guest-cache', default=None)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    args.guest_cache = args.guest_cache or os.path.join(
        env['FASTCLONE_LAB_DIR'], 'guest')
    conn = cloudboot.connect(env)
    missing = missing_computes(conn)
    if missing:
        print('computes not up: %s' % missing, file=sys.stderr)
        return 1
    print('the guest: %s (a Debian cloud kernel and a busybox init that '
          'prints "%s ... uuid=<its own> sum=<its disk>")' % (
              os.path.join(args.guest_cache, 'alpha.raw'), guest.MARKER))
    boots = run(conn, env, args)
    print()
    print('\n'.join(table(boots)))
    print()
    print('\n'.join(medians(boots)))
    plain = guest.boot_plain(os.path.join(args.guest_cache, 'alpha.raw'))
    print('%-17s median to marker %5.1f s (plain QEMU from the local raw '
          'file: the limit)' % ('limit', plain.seconds))
    failed = [b for b in boots if b.error or b.marker_s is None]
    print('%d servers, %d failed' % (len(boots), len(failed)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
