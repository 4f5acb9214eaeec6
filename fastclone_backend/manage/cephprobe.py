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
instances and cache pools.
"""

import calendar
import json
import os
import socket
import subprocess
import time

import nova.conf
from nova.storage import rbd_utils

from fastclone_backend import cache
from fastclone_backend import cluster
from fastclone_backend import doctor
from fastclone_backend import liveness

CONF = nova.conf.CONF

PROBE_OBJECT = 'fastclone-doctor-probe-%s-%d' % (socket.gethostname(),
                                                 os.getpid())
CMD_TIMEOUT = 30


def _err(e) -> str:
    return '%s: %s' % (type(e).__name__, e)


# ---------------------------------------------------------------- nova.conf
def pools_wanted() -> dict:
    wanted = {p: '[fastclone] clone_allowed_pools'
              for p in CONF.fastclone.clone_allowed_pools}
    wanted[cache_pool()] = '[fastclone] cache_pool'
    wanted[CONF.libvirt.images_rbd_pool] = '[libvirt] images_rbd_pool'
    return wanted


def cache_pool() -> str:
    return CONF.fastclone.cache_pool or CONF.libvirt.images_rbd_pool


# ---------------------------------------------------------------- Ceph
def connect():
    """(connected rados.Rados or None, verdict)."""
    lv = CONF.libvirt
    user = lv.rbd_user or 'admin'
    start = time.monotonic()
    client = rbd_utils.rados.Rados(rados_id=lv.rbd_user,
                                   conffile=lv.images_rbd_ceph_conf or '')
    try:
        client.connect(timeout=lv.rbd_connect_timeout)
    except Exception as e:
        client.shutdown()
        return None, doctor.check_connect(user, lv.images_rbd_ceph_conf,
                                          _err(e), 0.0,
                                          lv.rbd_connect_timeout)
    return client, doctor.check_connect(user, lv.images_rbd_ceph_conf, None,
                                        time.monotonic() - start,
                                        lv.rbd_connect_timeout)


def ceph_checks(client) -> list:
    user = CONF.libvirt.rbd_user or 'admin'
    wanted = pools_wanted()
    existing = set(client.list_pools())
    found = [doctor.check_pools(wanted, existing)]
    all_pools = sorted(wanted)
    for pool in CONF.fastclone.clone_allowed_pools:
        if pool in existing:
            found.append(doctor.check_pool_access(
                user, pool, 'Glance', 'read', _read(client, pool),
                all_pools))
    writable = {CONF.libvirt.images_rbd_pool: 'instances'}
    writable.setdefault(cache_pool(), 'cache')
    if cache_pool() == CONF.libvirt.images_rbd_pool:
        writable[cache_pool()] = 'instances+cache'
    for pool, role in writable.items():
        if pool in existing:
            found.append(doctor.check_pool_access(
                user, pool, role, 'write', _write(client, pool), all_pools))
    found.append(doctor.check_mgr(user, _mgr_error(client, 'rbd task list'),
                                  all_pools))
    found.append(_clone_format(client))
    schedules = _schedules(client)
    found.append(doctor.check_trash_schedule(
        {p: schedules.get(p, []) for p in
         dict.fromkeys(list(CONF.fastclone.clone_allowed_pools) +
                       [cache_pool()]) if p in existing}))
    found.append(doctor.check_leases(leases(client, existing), time.time()))
    return found


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
    ret, out, err = client.mon_command(cmd, b'')
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
    objects = [(cache.LIFECYCLE_OBJECT, 'lifecycle')]
    objects += [(cache.lock_object(i), cache.LOCK_NAME) for i in sorted(
        {cache.image_id_of(n) for n in names if cache.is_cache_name(n)})]
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


# ---------------------------------------------------------------- host
