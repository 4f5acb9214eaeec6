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

"""Background flatten through the Ceph manager's task queue.

``rbd task add flatten`` queues the flatten in the mgr's ``rbd_support``
module: it runs off the compute host, survives nova-compute restarts and is
retried by the mgr.  It needs mgr caps (``mgr 'profile rbd pool=<pool>'``);
without them the pass logs once what to add and goes on without
flattening.
"""

import errno
import json

from oslo_log import log as logging

from fastclone_backend.lifecycle import advice

LOG = logging.getLogger(__name__)

MGR_TIMEOUT = 10


class MgrRefused(Exception):
    pass


def _mgr(driver, prefix: str, **args):
    cmd = dict(args, prefix=prefix, format='json')
    with driver.handle.using() as client:   # never shut down meanwhile
        ret, out, err = client.mgr_command(json.dumps(cmd), b'',
                                           timeout=MGR_TIMEOUT)
    if ret:
        raise MgrRefused('%s: %s (%s)' % (prefix, err or 'failed',
                                          errno.errorcode.get(-ret, ret)))
    return json.loads(out or b'null')


def in_flight(driver) -> set:
    """Specs (pool/image) with a flatten task queued or running."""
    tasks = _mgr(driver, 'rbd task list') or []
    return {'%s/%s' % (t['refs']['pool_name'], t['refs']['image_name'])
            for t in tasks if t.get('refs', {}).get('action') == 'flatten'}


def submit(driver, spec: str):
    """Queue a flatten of pool/image; the mgr's task id, None if refused."""
    try:
        task = _mgr(driver, 'rbd task add flatten', image_spec=spec)
    except MgrRefused as e:
        warn_once(driver, spec.split('/')[0], e)
        return None
    LOG.info('queued flatten of %(spec)s in the Ceph manager (task '
             '%(task)s)', {'spec': spec, 'task': task.get('id')})
    return task.get('id')


def warn_once(driver, pool: str, err) -> None:
    advice.warn_once(
        ('flatten', pool),
        "cannot queue flatten tasks in pool %(pool)s (%(err)s): clones "
        "there are not flattened.  Give the Ceph user the mgr caps: ceph "
        "auth caps client.%(user)s mon 'profile rbd' osd '<as now>' mgr "
        "'profile rbd pool=%(pool)s'",
        {'pool': pool, 'err': err, 'user': driver.rbd_user})
