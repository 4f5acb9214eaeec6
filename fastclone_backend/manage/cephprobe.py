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

"""The doctor's Ceph probes, as Nova's Ceph user (thin I/O).

Nothing is changed but one probe object, created and removed in the
instances and cache pools, and one blocklist entry for a documentation
address (:data:`BLOCKLIST_PROBE`, nobody's) that expires after a second.
"""

import calendar
import json
import os
import socket
import subprocess
import time

import nova.conf
from nova.storage import rbd_utils

from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend import liveness
from fastclone_backend.manage import doctor
from fastclone_backend.manage import facts as facts_mod

CONF = nova.conf.CONF

PROBE_OBJECT = 'fastclone-doctor-probe-%s-%d' % (socket.gethostname(),
                                                 os.getpid())
CMD_TIMEOUT = facts_mod.CMD_TIMEOUT
_err = facts_mod.err
BLOCKLIST_PROBE = '192.0.2.1:0/1'   # RFC 5737 TEST-NET-1: no client's


# ---------------------------------------------------------------- nova.conf
def pools_wanted() -> dict:
    wanted = {p: '[fastclone] clone_allowed_pools'
              for p in CONF.fastclone.clone_allowed_pools}
    wanted[cache_pool()] = '[fastclone] cache_pool'
    wanted[CONF.libvirt.images_rbd_pool] = '[libvirt] images_rbd_pool'
    return wanted


def cache_pool() -> str:
    return CONF.fastclone.cache_pool or CONF.libvirt.images_rbd_pool


# ---------------------------------------------------------------- probes
def read_keyring():
    """(where, {path: state}, key) of the Ceph user, as librados finds it.

    Reads ceph.conf the way the connection does (``keyring``, ``key``,
    ``keyfile`` after metavariable expansion); the key is '' when none of
    them gives one.
    """
    lv = CONF.libvirt
    client = rbd_utils.rados.Rados(rados_id=lv.rbd_user,
                                   conffile=lv.images_rbd_ceph_conf or '')
    try:
        key = client.conf_get('key') or ''
        keyfile = client.conf_get('keyfile') or ''
        where = client.conf_get('keyring') or ''
    finally:
        client.shutdown()
    if key:
        return 'key option', {'key option in ceph.conf': 'ok'}, key
    found = {}
    entity = 'client.%s' % facts_mod.ceph_user()
    if keyfile:
        state, key = _keyfile(keyfile)
        found[keyfile] = state
        if key:
            return keyfile, found, key
    for path in (p.strip() for p in where.split(',') if p.strip()):
        state, got = _keyring_file(path, entity)
        found[path] = state
        if got:
            return where, found, got
    return where, found, ''


def _read_text(path: str):
    """(text, '') or ('', why not)."""
    try:
        with open(path) as f:
            return f.read(), ''
    except FileNotFoundError:
        return '', 'missing'
    except UnicodeDecodeError:
        return '', 'not a text keyring'
    except OSError as e:
        return '', '%s: %s' % (type(e).__name__, e.strerror or e)


def _keyfile(path: str):
    text, why = _read_text(path)
    return (why, '') if why else ('ok', text.strip())


def _keyring_file(path: str, entity: str):
    """(state, key) of entity's key in a keyring file."""
    text, why = _read_text(path)
    if why:
        return why, ''
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('[') and line.endswith(']'):
            section = line[1:-1].strip()
        elif section == entity and line.split('=', 1)[0].strip() == 'key':
            return 'ok', line.split('=', 1)[1].strip()
    return 'no [%s] key in it' % entity, ''


def keyring(facts):
    from fastclone_backend.manage import probes
    path = CONF.libvirt.images_rbd_ceph_conf
    if path and probes.file_state(path) != 'ok' or \
            not path and not probes.default_ceph_conf():
        raise facts_mod.Unavailable('ceph.conf')
    where, found, _key = facts.keyring()
    return doctor.check_keyring(facts_mod.ceph_user(), where,
                                {p: 'ok' if s == 'ok' else s
                                 for p, s in found.items()})


def reachable(facts):
    seconds, error = facts.connect()
    lv = CONF.libvirt
    return doctor.check_connect(facts_mod.ceph_user(),
                                lv.images_rbd_ceph_conf, error, seconds,
                                lv.rbd_connect_timeout)


def pools(facts):
    return doctor.check_pools(pools_wanted(), facts.pools())


def osd_caps(facts):
    client, existing = facts.client(), facts.pools()
    results = []
    for pool in CONF.fastclone.clone_allowed_pools:
        if pool in existing:
            results.append((pool, 'Glance', 'read', _read(client, pool)))
    writable = {CONF.libvirt.images_rbd_pool: 'instances'}
    if cache_pool() == CONF.libvirt.images_rbd_pool:
        writable[cache_pool()] = 'instances+cache'
    else:
        writable[cache_pool()] = 'cache'
    for pool, role in writable.items():
        if pool in existing:
            results.append((pool, role, 'write', _write(client, pool)))
    return doctor.check_osd_caps(facts_mod.ceph_user(), results,
                                 sorted(pools_wanted()))


def blocklist(facts):
    return doctor.check_blocklist_cap(facts_mod.ceph_user(),
                                      _blocklist_error(facts.client()),
                                      sorted(pools_wanted()))


def mgr_caps(facts):
    return doctor.check_mgr(facts_mod.ceph_user(),
                            _mgr_error(facts.client(), 'rbd task list'),
                            sorted(pools_wanted()))


def clone_format(facts):
    return _clone_format(facts.client())


def trash_schedule(facts):
    client, existing = facts.client(), facts.pools()
    schedules = _schedules(client)
    return doctor.check_trash_schedule(
        {p: schedules.get(p, []) for p in
         dict.fromkeys(list(CONF.fastclone.clone_allowed_pools) +
                       [cache_pool()]) if p in existing})


def lease_check(facts):
    return doctor.check_leases(leases(facts.client(), facts.pools()),
                               time.time())


def _read(client, pool):
    try:
        with client.open_ioctx(pool) as ioctx:
            rbd_utils.rbd.RBD().list(ioctx)
    except Exception as e:
        return _err(e)
    return None


def _write(client, pool):
    try:
        with client.open_ioctx(pool) as ioctx:
            ioctx.write_full(PROBE_OBJECT, b'fastclone doctor probe')
            ioctx.remove_object(PROBE_OBJECT)
    except Exception as e:
        return _err(e)
    return None


def _blocklist_error(client):
    """Why 'osd blocklist add' is refused to us (None: it is allowed).

    The monitor checks caps before it runs a command: only running one
    tells; this one blocklists nobody's address for a second.
    """
    cmd = json.dumps({'prefix': 'osd blocklist', 'blocklistop': 'add',
                      'addr': BLOCKLIST_PROBE, 'expire': 1.0})
    try:
        ret, _out, err = client.mon_command(cmd, b'', timeout=CMD_TIMEOUT)
    except Exception as e:
        return _err(e)
    return '%s (%d)' % (err or 'refused', ret) if ret else None


def _mgr(client, prefix, **args):
    cmd = dict(args, prefix=prefix, format='json')
    ret, out, err = client.mgr_command(json.dumps(cmd), b'',
                                       timeout=CMD_TIMEOUT)
    return ret, out, err


def _mgr_error(client, prefix, **args):
    try:
        ret, _out, err = _mgr(client, prefix, **args)
    except Exception as e:
        return _err(e)
    return '%s (%d)' % (err or 'refused', ret) if ret else None


def _schedules(client) -> dict:
    """{pool: [interval, ...]} of the rbd trash purge schedules."""
    try:
        ret, out, _err = _mgr(client, 'rbd trash purge schedule list')
    except Exception:
        return {}
    if ret:
        return {}
    return schedules_by_pool(json.loads(out or b'{}'))


def schedules_by_pool(levels: dict) -> dict:
    """The mgr's {id: {name: 'pool/[ns]', schedule: [...]}}, by pool."""
    found = {}
    for level in levels.values():
        pool = level.get('name', '').split('/')[0]
        found.setdefault(pool, []).extend(
            s.get('interval', '?') for s in level.get('schedule') or ())
    return found


def _clone_format(client):
    cmd = json.dumps({'prefix': 'osd get-require-min-compat-client',
                      'format': 'json'})
    ret, out, err = client.mon_command(cmd, b'', timeout=CMD_TIMEOUT)
    min_compat = out.decode().strip().strip('"') if not ret else '?'
    setting = client.conf_get('rbd_default_clone_format')
    return doctor.check_clone_format(
        setting, min_compat, cluster.clone_format_for(setting, min_compat))


# ---------------------------------------------------------------- leases
def _lock_info(pool, obj, name) -> list:
    lv = CONF.libvirt
    cmd = ['rados', '-p', pool, 'lock', 'info', obj, name, '--format',
           'json']
    if lv.images_rbd_ceph_conf:
        cmd += ['-c', lv.images_rbd_ceph_conf]
    if lv.rbd_user:
        cmd += ['--id', lv.rbd_user]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=CMD_TIMEOUT)
    if proc.returncode:
        return []
    return json.loads(proc.stdout or '{}').get('lockers', [])


def _expires(text: str) -> float:
    if not text or text.startswith('0.0'):
        return 0.0
    try:
        return float(calendar.timegm(time.strptime(text[:19],
                                                   '%Y-%m-%dT%H:%M:%S')))
    except ValueError:
        return 0.0


def _dead(cookie: str) -> bool:
    """A holder on this host whose process is gone (host:pid:token)."""
    parts = cookie.split(':')
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return False
    return parts[1].isdigit() and not os.path.exists('/proc/' + parts[1])


def _unanswering(ioctx, obj: str, cookie: str) -> bool:
    """A holder on any host whose liveness watch no longer answers."""
    holder = liveness.dead_holder(ioctx, obj, rbd_utils.rados)
    return holder is not None and holder['cookie'] == cookie


def leases(client, existing) -> list:
    """The population and lifecycle leases held in the cache pool."""
    pool = cache_pool()
    if pool not in existing:
        return []
    with client.open_ioctx(pool) as ioctx:
        names = rbd_utils.rbd.RBD().list(ioctx)
    objects = [(naming.LIFECYCLE_OBJECT, 'lifecycle')]
    objects += [(naming.lock_object(i), naming.LOCK_NAME) for i in sorted(
        {naming.image_id_of(n) for n in names if naming.is_cache_name(n)})]
    found = []
    with client.open_ioctx(pool) as ioctx:
        for obj, lock in objects:
            for holder in _lock_info(pool, obj, lock):
                cookie = holder.get('cookie', '')
                found.append({
                    'pool': pool, 'object': obj, 'lock': lock,
                    'client': holder.get('name', '?').split('.')[-1],
                    'cookie': cookie,
                    'expires': _expires(holder.get('expiration')),
                    'dead': _dead(cookie) or _unanswering(ioctx, obj,
                                                          cookie)})
    return found
