"""The lab's cloud tier for functional tests (``tools/lab up --cloud``).

Keystone, Placement, Neutron's API, Nova's API, conductor and scheduler and
three computes (``fast1`` and ``fast2`` run nova-compute-fastrbd, ``stock1``
stock nova-compute) as processes on 127.0.0.1, on top of the lab's Ceph and
Glance.  The cloud tests are part of the functional run (marker ``cloud``):
they never skip.  The ``cloud`` fixture uses the tier ``tools/lab env``
reports, or starts it with ``tools/lab up --cloud`` (and leaves it up:
stopping it is ``tools/lab down``); a tier that cannot be started or reached
fails the tests.  Bringing the tier up moves Glance to Keystone auth, so the
cloud tests run after every other functional test of a session
(conftest.py orders them last).

``FASTCLONE_CLOUD_REPORT=FILE``: each cloud test's result and seconds, and
the tier's processes, services and hypervisors, as a Markdown table there.
"""

import dataclasses
import os
import subprocess
import time

import pytest

from fastclone_lab import cloudboot
from fastclone_lab import libvirthost
from tests.functional import conftest

FASTRBD_HOSTS = ('fast1', 'fast2')
STOCK_HOSTS = ('stock1',)
ACTIVE_LINE = 'fastclone-backend active:'
MARK = 'cloud'
SMOKE_MARK = 'cloud_smoke'     # FASTCLONE_CLOUD_SMOKE=1 runs only these


@dataclasses.dataclass
class Cloud:
    conn: object          # openstack.connection.Connection, admin
    env: dict             # what tools/lab env printed
    flavor: str           # 128 MiB, 1 vCPU, 1 GiB root disk
    logs: str             # the directory of the Nova services' logs

    @property
    def lab_dir(self) -> str:
        return self.env['FASTCLONE_LAB_DIR']

    def compute_log(self, host: str) -> str:
        with open(os.path.join(self.logs, 'compute-%s.log' % host)) as f:
            return f.read()

    def runs_fastrbd(self, host: str) -> bool:
        """Whether that compute logged fastclone-backend's start-up line."""
        return ACTIVE_LINE in self.compute_log(host)

    def libvirt(self, host: str) -> libvirthost.LibvirtHost:
        return libvirthost.LibvirtHost(
            host, os.path.join(self.lab_dir, 'cloud', 'libvirt'))

    def wait_status(self, server_id: str, status: str, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            server = self.conn.compute.get_server(server_id)
            if server.status == status:
                return server
            if server.status == 'ERROR' or time.monotonic() > deadline:
                raise AssertionError('server %s is %s (fault: %s), not %s' % (
                    server_id, server.status, server.fault, status))
            time.sleep(1)

    def wait_error(self, server_id: str, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            server = self.conn.compute.get_server(server_id)
            if server.status == 'ERROR':
                return server
            if time.monotonic() > deadline:
                raise AssertionError('server %s is %s, not ERROR' % (
                    server_id, server.status))
            time.sleep(1)

    def wait_gone(self, server_id: str, timeout=180):
        deadline = time.monotonic() + timeout
        while self.conn.compute.find_server(server_id) is not None:
            if time.monotonic() > deadline:
                raise AssertionError('server %s still there' % server_id)
            time.sleep(1)

    def console(self, server_id: str) -> str:
        out = self.conn.compute.get_server_console_output(server_id)
        return out.get('output') or ''

    def lab(self, *args) -> str:
        return conftest._run(conftest.LAB, *args)


def tier_up() -> bool:
    return subprocess.run([conftest.LAB, 'status', '--cloud'],
                          capture_output=True).returncode == 0


def connect(env: dict):
    return cloudboot.connect(env, compute_api_version='2.95')


up_computes = cloudboot.up_hosts


def wait_computes(conn, timeout=120) -> set:
    """The computes reported up, after waiting (a while) for all three."""
    return cloudboot.up_hosts_awaited(conn, set(FASTRBD_HOSTS + STOCK_HOSTS),
                                      timeout)


@pytest.fixture(scope='session')
def cloud():
    if not tier_up():
        conftest._run(conftest.LAB, 'up', '--cloud')
    env = conftest._parse_env(conftest._run(conftest.LAB, 'env'))
    if env.get('FASTCLONE_LAB_CLOUD') != '1':
        pytest.fail('tools/lab env prints no cloud tier after tools/lab up '
                    '--cloud', pytrace=False)
    conn = connect(env)
    try:
        hosts = wait_computes(conn)
        # the whole set runs more servers than Nova's default quota (10)
        cloudboot.unlimited_quotas(conn)
    except Exception as e:
        pytest.fail('the cloud tier cannot be reached (%s: %s); see tools/lab '
                    'status --cloud' % (type(e).__name__, e), pytrace=False)
    missing = set(FASTRBD_HOSTS + STOCK_HOSTS) - hosts
    if missing:
        pytest.fail('computes not up: %s' % sorted(missing), pytrace=False)
    yield Cloud(conn=conn, env=env, flavor=env['FASTCLONE_LAB_CLOUD_FLAVOR'],
                logs=env['FASTCLONE_LAB_CLOUD_LOGS'])
    conn.close()


# ---------------------------------------------------------------- report
# conftest.py's hooks feed these: {nodeid: [outcome, seconds]} in run order
_RESULTS = {}
_NOTES = []


def is_cloud_item(item) -> bool:
    return item.get_closest_marker(MARK) is not None


def is_smoke_item(item) -> bool:
    return item.get_closest_marker(SMOKE_MARK) is not None


def record(report, cloud_ids) -> None:
    """Add one phase (setup, call, teardown) of a cloud test to the table."""
    if report.nodeid not in cloud_ids:
        return
    row = _RESULTS.setdefault(report.nodeid, ['passed', 0.0])
    row[1] += report.duration
    if report.failed:
        row[0] = 'failed' if report.when == 'call' else 'error'
    elif report.skipped and row[0] == 'passed':
        row[0] = 'skipped'


def note(title: str, text: str) -> None:
    """A block for the report (the tier's processes, services, ...)."""
    _NOTES.append((title, text.rstrip()))


def write_report() -> None:
    path = os.environ.get('FASTCLONE_CLOUD_REPORT')
    if not path or not _RESULTS:
        return
    lines = ['| test | result | seconds |', '|---|---|---:|']
    for nodeid, (outcome, seconds) in _RESULTS.items():
        lines.append('| %s | %s | %.1f |' % (
            nodeid.split('::', 1)[-1], outcome, seconds))
    total = sum(s for _o, s in _RESULTS.values())
    lines.append('| total | | %.1f |' % total)
    for title, text in _NOTES:
        lines += ['', '%s:' % title, '', '```', text, '```']
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
