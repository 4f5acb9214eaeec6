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

"""Getting an image's bytes onto this host, verified, and into RBD.

Streaming with bounded memory: Glance's chunks go straight to a file while
they are hashed and counted; the external tools (``qemu-img convert``,
``rbd import``) run under prlimit with their progress parsed from their own
output.
"""

import hashlib
import os
import re
import resource
import subprocess
import sys
import threading
import time

from oslo_concurrency import processutils
from oslo_log import log as logging

from fastclone_backend.cache import degrade
from fastclone_backend.cache import progress
from fastclone_backend import exception as fc_exception

LOG = logging.getLogger(__name__)

CHUNK = 4 << 20
PERCENT = re.compile(rb'(\d+(?:\.\d+)?)(?:/100)?\s*%')


def expected_digest(image_meta: dict):
    """(algorithm, hex digest) Glance recorded, or (None, None)."""
    algo = image_meta.get('os_hash_algo')
    value = image_meta.get('os_hash_value')
    if algo and value:
        return algo, value
    if image_meta.get('checksum'):
        return 'md5', image_meta['checksum']
    return None, None


class VerifyingWriter:
    """A file object for a download(data=...): writes, hashes, counts."""

    def __init__(self, f, image_meta: dict, interval: float):
        self.f = f
        self.image_id = image_meta['id']
        self.size = image_meta.get('size') or 0
        self.algo, self.digest = expected_digest(image_meta)
        self.hash = hashlib.new(self.algo) if self.algo else None
        self.written = 0
        self.progress = progress.Progress(self.image_id, 'download',
                                          self.size, interval)

    def write(self, chunk: bytes) -> None:
        self.f.write(chunk)
        if self.hash:
            self.hash.update(chunk)
        self.written += len(chunk)
        self.progress.update(self.written)

    def verify(self) -> None:
        self.progress.finish()
        reject = fc_exception.ImageRejected
        if self.size and self.written != self.size:
            raise reject(image=self.image_id,
                         reason='downloaded %d bytes, Glance says %d'
                                % (self.written, self.size))
        if self.hash and self.hash.hexdigest() != self.digest:
            raise reject(image=self.image_id,
                         reason='the data Glance sent does not match the '
                                'hash it recorded: %s of the data is %s, '
                                'Glance says %s'
                                % (self.algo, self.hash.hexdigest(),
                                   self.digest))


def verify_file(path: str, image_meta: dict, interval: float) -> None:
    """Hash and size a file written by someone else (rbd export)."""
    writer = VerifyingWriter(open(os.devnull, 'wb'), image_meta, interval)
    writer.progress.step = 'verify'
    with open(path, 'rb') as f, writer.f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            writer.write(chunk)
    writer.verify()


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def workdir_full(image_id: str, path: str, reason: str):
    return fc_exception.CacheUnavailable(
        image=image_id, kind=degrade.WORKDIR_FULL,
        reason='the work directory %s is full: %s' % (path, reason),
        fix='free space there, or point [fastclone] work_dir at a larger '
            'filesystem')


def check_room(path: str, needed: int, image_id: str) -> None:
    have = free_bytes(path)
    if have < needed:
        raise workdir_full(image_id, path, '%d MiB needed, %d MiB free'
                           % (needed >> 20, have >> 20))


# what a failed qemu-img or rbd says, in the words librados and libc use
TIMEOUT_WORDS = ('Connection timed out', 'ETIMEDOUT', '(110)')
QUOTA_WORDS = ('Disk quota exceeded', 'EDQUOT', '(122)', 'No space left')
LIMIT_WORDS = ('Cannot allocate memory', 'Failed to allocate', 'ENOMEM',
               'std::bad_alloc', 'out of memory', 'qemu_thread_create')
# killed by prlimit: SIGKILL/SIGXCPU (CPU time), SIGSEGV/SIGABRT (address
# space), as subprocess reports them (negative)
LIMIT_SIGNALS = (-9, -24, -11, -6)
# the Linux default, with which the address-space defaults were measured
TOOL_STACK = 8 << 20


def failure_kind(exit_code, output: str) -> str:
    """'limits', 'timeout', 'quota' or 'failed': why a tool failed."""
    if exit_code in LIMIT_SIGNALS or any(w in output for w in LIMIT_WORDS):
        return 'limits'
    if any(w in output for w in TIMEOUT_WORDS):
        return 'timeout'
    if any(w in output for w in QUOTA_WORDS):
        return 'quota'
    return 'failed'


def tool_stack() -> int:
    """The stack limit a bounded tool runs with: 8 MiB, or less if capped.

    glibc sizes every thread's stack from RLIMIT_STACK, so the address
    space qemu-img and librbd need depends on the limit they inherit
    (``ulimit -s unlimited`` halves it, a larger limit multiplies it).
    A fixed one makes ``convert_address_space_mib`` mean the same on
    every host, whatever nova-compute was started with.
    """
    hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
    if hard == resource.RLIM_INFINITY:
        return TOOL_STACK
    return min(TOOL_STACK, hard)


def prlimit(cmd: list, address_space: int, cpu_time: int) -> list:
    """cmd run under oslo.concurrency's prlimit wrapper."""
    return [sys.executable, '-m', 'oslo_concurrency.prlimit',
            '--as=%d' % address_space, '--cpu=%d' % cpu_time,
            '--stack=%d' % tool_stack(), '--'] + cmd


def _lines(stream):
    """Output split on CR and LF: progress bars rewrite one line.

    os.read, not stream.read1: under eventlet (nova-compute) pipes are
    GreenFileIO, and os.read is green there.
    """
    buf = b''
    for chunk in iter(lambda: os.read(stream.fileno(), 4096), b''):
        buf += chunk
        parts = re.split(rb'[\r\n]', buf)
        buf = parts.pop()
        yield from parts
    if buf:
        yield buf


class TimedOut(Exception):
    """The tool ran past its timeout and was killed."""

    def __init__(self, seconds: float):
        super().__init__('killed after %.0f s' % seconds)
        self.seconds = seconds


class _Deadline:
    """Kills a process once timeout seconds are up (never for 0)."""

    def __init__(self, proc, timeout: float):
        self.fired = False
        self.timer = None
        if timeout:
            self.timer = threading.Timer(timeout, self._fire, (proc,))
            self.timer.daemon = True
            self.timer.start()

    def _fire(self, proc):
        self.fired = True
        proc.kill()

    def cancel(self):
        if self.timer is not None:
            self.timer.cancel()


def run_with_progress(cmd: list, prog: progress.Progress,
                      stop=lambda: False, timeout: float = 0) -> bool:
    """Run cmd, feeding the percentages it prints to prog.

    :param stop: asked at each line of output; when it says True, cmd is
        killed and False returned.
    :param timeout: kill cmd after this many seconds (0: never).
    :returns: True once cmd succeeded.
    :raises: processutils.ProcessExecutionError with the tail of its
        output; TimedOut when it was killed for its timeout.
    """
    LOG.debug('running %(cmd)s', {'cmd': ' '.join(cmd)})
    tail = []
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, LC_ALL='C', LANG='C'))
    deadline = _Deadline(proc, timeout)
    try:
        return _follow(proc, cmd, prog, stop, tail)
    except processutils.ProcessExecutionError:
        if deadline.fired:
            raise TimedOut(time.monotonic() - start)
        raise
    finally:
        deadline.cancel()


def _follow(proc, cmd, prog, stop, tail) -> bool:
    with proc.stdout:
        for line in _lines(proc.stdout):
            if stop():
                proc.kill()
                proc.wait()
                return False
            match = PERCENT.search(line)
            if match and prog.total:
                prog.update(int(float(match.group(1)) * prog.total / 100))
            elif line.strip():
                tail = (tail + [line.decode(errors='replace')])[-20:]
    if proc.wait():
        raise processutils.ProcessExecutionError(
            stdout='\n'.join(tail), exit_code=proc.returncode,
            cmd=' '.join(cmd))
    prog.finish()
    return True
