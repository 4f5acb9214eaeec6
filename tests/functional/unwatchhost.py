"""A host whose unwatch fails, then exits: for tests/functional/test_abort.

``python -m tests.functional.unwatchhost OSD_PID`` (lab variables set)
waits on an object with :class:`fastclone_backend.wake.Waiting` on a
connection whose operations time out after 2 s, stops the OSD while the
wait is closed (the unwatch times out), resumes it, and exits with the
connection still up, as a host does after such a spawn.  It prints
``abandoned N``; the interpreter's exit must not abort.
"""

import os
import signal
import sys

import rados

from fastclone_backend import wake


def main():
    osd = int(sys.argv[1])
    client = rados.Rados(conffile=os.environ['FASTCLONE_CEPH_CONF'],
                         rados_id=os.environ['FASTCLONE_NOVA_RBD_USER'])
    client.conf_set('rados_osd_op_timeout', '2')
    client.connect()
    ioctx = client.open_ioctx(os.environ['FASTCLONE_VMS_POOL'])
    obj = 'fastclone-test-unwatch-%d' % os.getpid()
    ioctx.write_full(obj, b'')
    waiting = wake.Waiting(ioctx, obj)
    waiting.wait(0)   # watching now
    os.kill(osd, signal.SIGSTOP)
    try:
        waiting.close()
    finally:
        os.kill(osd, signal.SIGCONT)
    print('abandoned %d' % len(wake._ABANDONED), flush=True)
    ioctx.close()   # the client stays connected until the process exits
    return 0


if __name__ == '__main__':
    sys.exit(main())
