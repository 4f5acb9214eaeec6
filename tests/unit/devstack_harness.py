"""Run the devstack plugin's bash under stubs of devstack's functions.

devstack cannot run here; the plugin's own code does: ``devstack/settings``
and ``devstack/plugin.sh`` are sourced by bash exactly as devstack's
``load_plugin_settings`` and ``run_plugins`` source them, with devstack's
functions (``define_plugin``, ``iniset``, ``pip_install``,
``is_service_enabled``, ``die``, ``sudo``, ``systemctl``, ``journalctl``)
replaced by stubs that record each call, one line per call, tab-separated,
in ``calls``.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEVSTACK = os.path.join(REPO, 'devstack')

STUBS = r'''
set -e
rec() { local IFS=$'\t'; echo "$*" >> "$CALLS"; }
die() { shift; rec die "$*"; exit 3; }
echo_summary() { :; }
define_plugin() { :; }      # no-ops in devstack's functions-common too
plugin_requires() { :; }
iniset() { rec iniset "$@"; }
pip_install() { rec pip_install "$@"; }
pip_uninstall() { rec pip_uninstall "$@"; }
is_service_enabled() { [[ ",$ENABLED," == *",$1,"* ]]; }
is_ceph_enabled_for_service() { [[ ",$CEPH_FOR," == *",$1,"* ]]; }
sudo() { "$@"; }
systemctl_stub() {
    rec systemctl "$@"
    if [[ "$1" == show ]]; then echo "${ACTIVE_SINCE:-}"; fi
}
journalctl() { rec journalctl "$@"; printf '%s\n' "${JOURNAL:-}"; }
sleep() { :; }
SYSTEMCTL=systemctl_stub
'''


def run(tmp_path, script, env=None):
    """Run script after the stubs and devstack's variables.

    Returns (returncode, calls as lists of fields, stderr).
    """
    calls = tmp_path / 'calls'
    calls.write_text('')
    base = {
        'PATH': os.environ['PATH'], 'HOME': str(tmp_path),
        'CALLS': str(calls), 'PYTHON': sys.executable,
        'SYSTEMD_DIR': str(tmp_path / 'systemd'),
        'NOVA_BIN_DIR': '/opt/stack/data/venv/bin',
        'NOVA_CPU_CONF': '/etc/nova/nova-cpu.conf',
        'GLANCE_API_CONF': '/etc/glance/glance-api.conf',
        'FASTCLONE_NOVA_CONF': str(tmp_path / 'nova-cpu-fastclone.conf'),
        'ENABLED': 'g-api,n-cpu', 'CEPH_FOR': 'glance,nova',
    }
    base.update(env or {})
    text = STUBS + 'source %s/settings\n%s\n' % (DEVSTACK, script)
    proc = subprocess.run(['bash', '-c', text], env=base, capture_output=True,
                          text=True, timeout=60)
    lines = calls.read_text().splitlines()
    return proc.returncode, [line.split('\t') for line in lines], proc.stderr


def phase(tmp_path, mode, name='', env=None):
    """devstack's run_plugins: source plugin.sh <mode> <phase>."""
    return run(tmp_path, 'source %s/plugin.sh %s %s' % (DEVSTACK, mode, name),
               env)


def inisets(calls, path):
    """(section, option, value) of each iniset call on path, in order."""
    return [tuple(c[2:]) for c in calls if c[0] == 'iniset' and c[1] == path]
