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

"""Servers booted through Nova's API on the lab's cloud tier, timed.

Shared by the boot benchmark (``benchmarks/boot.py``) and ``tools/demo
--boot``.  A server is created on a chosen compute (availability zone
``nova:<host>``) with ``networks: none``; from its create request on, one
poll loop records when Nova reports it ACTIVE and when its guest prints the
marker line (``fastclone_lab.guest``) with its own uuid and the sum of its
root disk, read from the console.log the compute's virtlogd writes under
that compute's instances path.

Also here, what a run measures around the boots: the vms pool's stored
bytes (``ceph df``), Glance's image-data GETs (its uwsgi request log) and
the ``qemu-img convert`` / ``rbd import`` processes this lab runs (sampled
from /proc: Nova's and fastclone's run in separate processes).
"""

import dataclasses
import json
import os
import re
import subprocess
import threading
import time

from fastclone_lab import guest

RUN_PREFIX = 'fcboot'
FASTRBD_HOSTS = ('fast1', 'fast2')
STOCK_RBD_HOSTS = ('stock1',)
STOCK_QCOW2_HOSTS = ('stockq',)
# stock nova-compute of the older release ('tools/lab up --cloud --mixed
# [31|33]'): stockNN runs Nova NN
MIXED_HOSTS = ('stock31', 'stock33')


def connect(env: dict, compute_api_version=None):
    """An openstacksdk connection as the lab's admin (tools/lab env)."""
    import openstack
    versions = {'compute_api_version': compute_api_version} if (
        compute_api_version) else {}
    return openstack.connect(
        auth_url=env['OS_AUTH_URL'], username=env['OS_USERNAME'],
        password=env['OS_PASSWORD'], project_name=env['OS_PROJECT_NAME'],
        user_domain_name=env['OS_USER_DOMAIN_NAME'],
        project_domain_name=env['OS_PROJECT_DOMAIN_NAME'],
        region_name=env['OS_REGION_NAME'], identity_api_version='3',
        **versions)


def nova_dir(env: dict) -> str:
    """$LAB/cloud/nova: the computes' instances paths are under it."""
    return os.path.dirname(env['FASTCLONE_LAB_CLOUD_LOGS'])


def console_path(nova: str, host: str, server_id: str) -> str:
    return os.path.join(nova, 'compute-%s' % host, 'instances', server_id,
                        'console.log')


def up_hosts(conn) -> set:
    return {s.host for s in conn.compute.services(binary='nova-compute')
            if s.state == 'up' and s.status == 'enabled'}


def up_hosts_awaited(conn, want: set, timeout: float = 120,
                     sleep=time.sleep, clock=time.monotonic) -> set:
    """up_hosts, once every host in want is up or timeout ran out.

    A compute that was just started reports up with its first heartbeat,
    some seconds after the tier says it is up.
    """
    deadline = clock() + timeout
    hosts = up_hosts(conn)
    while not want <= hosts and clock() < deadline:
        sleep(2)
        hosts = up_hosts(conn)
    return hosts


def unlimited_quotas(conn) -> None:
    """The admin project may run as many servers as the machine holds."""
    project = conn.current_project_id
    conn.set_compute_quotas(project, instances=-1, cores=-1, ram=-1)


# ------------------------------------------------------------------ images
@dataclasses.dataclass
class Image:
    kind: str         # 'raw' or 'qcow2' (its disk_format)
    id: str
    name: str
    sum: str          # what the guest's marker reports for it


def upload_images(conn, cache_dir: str, tag: str) -> dict:
    """alpha as raw and as qcow2 in Glance's default (rbd) store.

    Returns {'raw': Image, 'qcow2': Image}; the guest image is built (or
    found in cache_dir) by tools/lab.d/guest-image.
    """
    raw = guest.build_images(cache_dir, ['alpha'])['alpha']
    disk_sum = guest.expected_sum(raw)
    out = {}
    for kind, path in (('raw', raw), ('qcow2', raw[:-4] + '.qcow2')):
        name = '%s-%s-alpha-%s' % (RUN_PREFIX, tag, kind)
        image = conn.image.create_image(
            name=name, filename=path, disk_format=kind,
            container_format='bare', wait=True, timeout=600)
        out[kind] = Image(kind, image.id, name, disk_sum)
    return out


def delete_images(conn, images: dict) -> None:
    for image in images.values():
        conn.image.delete_image(image.id, ignore_missing=True)


# ------------------------------------------------------------------ boots
@dataclasses.dataclass
class Boot:
    host: str
    image: str                  # 'raw' or 'qcow2'
    server_id: str = ''
    created: float = 0.0        # monotonic time of the create request
    active_s: float = None      # create request -> ACTIVE seen
    marker_s: float = None      # create request -> marker line seen
    marker_line: str = ''
    error: str = ''

    @property
    def done(self) -> bool:
        return bool(self.error) or self.marker_s is not None

    def as_dict(self) -> dict:
        return {'host': self.host, 'image': self.image,
                'server_id': self.server_id, 'active_s': self.active_s,
                'marker_s': self.marker_s, 'error': self.error}


def create(conn, boot: Boot, image: Image, flavor_id: str, name: str):
    boot.created = time.monotonic()
    try:
        server = conn.compute.create_server(
            name=name, image_id=image.id, flavor_id=flavor_id,
            networks='none', availability_zone='nova:%s' % boot.host)
        boot.server_id = server.id
    except Exception as e:
        boot.error = 'create: %s: %s' % (type(e).__name__, e)


def marker_line(marker: dict) -> str:
    return guest.MARKER + ' ' + ' '.join(
        '%s=%s' % (k, v) for k, v in marker.items())


def check_marker(boot: Boot, image: Image, text: str, now: float) -> None:
    """Record the marker if the console shows this server's own."""
    marker = guest.parse_marker(text)
    if marker is None or marker.get('uuid') != boot.server_id:
        return
    boot.marker_s = now - boot.created
    boot.marker_line = marker_line(marker)
    if marker.get('sum') != image.sum:
        boot.error = 'guest read sum %s, image has %s' % (
            marker.get('sum'), image.sum)


def _statuses(conn, pattern: str) -> dict:
    return {s.id: s for s in conn.compute.servers(details=True,
                                                  name=pattern)}


def _note_status(boot: Boot, server, now: float) -> None:
    if server is None:
        return
    if server.status == 'ACTIVE' and boot.active_s is None:
        boot.active_s = now - boot.created
    elif server.status == 'ERROR':
        fault = server.fault or {}
        boot.error = 'ERROR: %s' % (fault.get('message') or 'no fault')


def watch(conn, boots: list, images: dict, nova: str, pattern: str,
          timeout: float, poll: float = 0.5, on_event=None) -> None:
    """Poll until every boot has its marker or failed, or timeout.

    One server list per round (name regex ``pattern``) for the states;
    each pending server's console.log on its compute for the marker.
    on_event(boot, what) is called when a boot goes ACTIVE, prints its
    marker or fails.
    """
    deadline = time.monotonic() + timeout
    while True:
        pending = [b for b in boots if not b.done and b.server_id]
        if not pending:
            return
        servers = _statuses(conn, pattern)
        for boot in pending:
            _poll_one(boot, servers.get(boot.server_id), images[boot.image],
                      nova, on_event)
        if time.monotonic() > deadline:
            for boot in boots:
                if not boot.done:
                    boot.error = 'no marker within %.0f s' % timeout
                    _event(on_event, boot, 'failed')
            return
        time.sleep(poll)


def _poll_one(boot, server, image, nova, on_event) -> None:
    was_active = boot.active_s is not None
    _note_status(boot, server, time.monotonic())
    if boot.active_s is not None and not was_active:
        _event(on_event, boot, 'active')
    if boot.error:
        _event(on_event, boot, 'failed')
        return
    text = guest.read_console(console_path(nova, boot.host, boot.server_id))
    check_marker(boot, image, text, time.monotonic())
    if boot.marker_s is not None:
        _event(on_event, boot, 'failed' if boot.error else 'marker')


def _event(on_event, boot, what) -> None:
    if on_event is not None:
        on_event(boot, what)


def delete_servers(conn, boots: list, timeout: float = 300) -> list:
    """Delete the servers; returns the ids still there after timeout."""
    ids = [b.server_id for b in boots if b.server_id]
    for server_id in ids:
        try:
            conn.compute.delete_server(server_id, ignore_missing=True)
        except Exception:   # retried below by the wait
            pass
    deadline = time.monotonic() + timeout
    left = ids
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = [i for i in left
                if conn.compute.find_server(i, ignore_missing=True)]
    return left


def boot_group(conn, hosts: list, image: Image, count: int, flavor_id: str,
               nova: str, tag: str, timeout: float = 600,
               on_event=None) -> list:
    """count servers of one image, spread over hosts, created at once."""
    pattern = '^%s-%s-' % (RUN_PREFIX, tag)
    boots = [Boot(host=hosts[i % len(hosts)], image=image.kind)
             for i in range(count)]
    for i, boot in enumerate(boots):
        create(conn, boot, image, flavor_id,
               '%s-%s-%s-%s-%d' % (RUN_PREFIX, tag, boot.host, image.kind, i))
        if boot.error:
            _event(on_event, boot, 'failed')
    watch(conn, boots, {image.kind: image}, nova, pattern, timeout,
          on_event=on_event)
    return boots


# ------------------------------------------------------------ measurements
def vms_stored(conf: str, pool: str = 'vms') -> int:
    """The pool's stored bytes (``ceph df``), as the admin user."""
    out = subprocess.run(['ceph', '-c', conf, 'df', '-f', 'json'],
                         check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return pool_stored(json.loads(out), pool)


def pool_stored(df: dict, pool: str) -> int:
    for entry in df.get('pools', []):
        if entry.get('name') == pool:
            return int(entry['stats']['stored'])
    raise KeyError('no pool %r in ceph df' % pool)


_GET_FILE = re.compile(r'GET /v2/images/([0-9a-f-]{36})/file => generated '
                       r'(\d+) bytes')


def glance_downloads(text: str, image_ids) -> tuple:
    """(count, bytes) of image-data GETs of those images in a uwsgi log."""
    wanted = set(image_ids)
    count = size = 0
    for m in _GET_FILE.finditer(text):
        if m.group(1) in wanted:
            count += 1
            size += int(m.group(2))
    return count, size


class LogTail:
    """What a log file gained since this object was made."""

    def __init__(self, path: str):
        self.path = path
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0

    def read(self) -> str:
        if not os.path.exists(self.path):
            return ''
        with open(self.path, 'rb') as f:
            f.seek(self.offset)
            return f.read().decode('utf-8', 'replace')


def classify(argv: list) -> str:
    """'conversion', 'import' or '' for one process's argument vector.

    qemu-img convert from a format other than raw is a conversion; from raw
    (fastclone's import into RBD) and ``rbd import`` are imports.
    """
    if len(argv) >= 2 and os.path.basename(argv[0]) == 'qemu-img' \
            and argv[1] == 'convert':
        fmt = argv[argv.index('-f') + 1] if '-f' in argv[:-1] else None
        return 'import' if fmt == 'raw' else 'conversion'
    if len(argv) >= 2 and os.path.basename(argv[0]) == 'rbd' \
            and argv[1] == 'import':
        return 'import'
    return ''


class ProcWatch:
    """Count qemu-img convert and rbd import runs of this lab from /proc.

    A sampling thread (every ``interval`` s) reads every process's command
    line (about 2 ms of CPU for 250 processes); a process whose command
    line names ``mark`` (the lab directory: its ceph.conf, its instances
    paths) is noted once per (pid, start time).  A conversion of even a
    small image runs for longer than the interval.
    """

    def __init__(self, mark: str, interval: float = 0.05):
        self.mark = mark
        self.interval = interval
        self.seen = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def counts(self) -> dict:
        out = {'conversion': 0, 'import': 0}
        for kind in self.seen.values():
            out[kind] += 1
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for pid in os.listdir('/proc'):
            if pid.isdigit():
                self._note(pid)

    def _note(self, pid: str) -> None:
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().decode('utf-8', 'replace').split('\0')[:-1]
            kind = classify(argv)
            if not kind or self.mark not in ' '.join(argv):
                return
            with open('/proc/%s/stat' % pid) as f:
                start = f.read().rsplit(')', 1)[1].split()[19]
        except (OSError, IndexError):
            return
        self.seen.setdefault((pid, start), kind)
