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

"""The host's work directory: the files of populations, owned while alive.

A population's files are ``<image id>.<token>.<kind>`` (the download, a
raw conversion).  Before it writes any, the population creates
``<image id>.<token>.lock`` and holds an ``flock`` on it; the lock goes
last.  The kernel drops an flock when its process dies (kill -9, reboot),
so :func:`sweep` knows a crashed population's files from a live one's
without pids: it removes a group only while it holds that flock itself,
or if the group has no lock file at all.  A claim checks, once it has the
flock, that its lock file is still the one at that name (a sweep may have
removed it in between) and starts again if not.
"""

import contextlib
import fcntl
import os

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

LOCK = 'lock'


def where(conf) -> str:
    """The work directory: [fastclone] work_dir, or under instances_path."""
    return conf.fastclone.work_dir or os.path.join(conf.instances_path,
                                                   'fastclone')


def path(conf) -> str:
    """The work directory, created if needed."""
    os.makedirs(where(conf), exist_ok=True)
    return where(conf)


def _prefix(image_id: str, token: str) -> str:
    return '%s.%s.' % (image_id, token)


def unlink(file_path: str) -> None:
    """Remove a file if it is there."""
    try:
        os.unlink(file_path)
    except FileNotFoundError:
        pass


class Claim:
    """The files of one population, named and removed together."""

    def __init__(self, workdir: str, image_id: str, token: str):
        self.workdir = workdir
        self.prefix = _prefix(image_id, token)

    def file(self, kind: str) -> str:
        return os.path.join(self.workdir, self.prefix + kind)

    def remove_files(self) -> None:
        for name in os.listdir(self.workdir):
            if name.startswith(self.prefix) and not name.endswith(LOCK):
                unlink(os.path.join(self.workdir, name))


def _locked(lock_path: str) -> int:
    """An fd holding the flock of the file now at lock_path (created)."""
    while True:
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)   # swept before we held it: make a new one


@contextlib.contextmanager
def claim(workdir: str, image_id: str, token: str):
    """Own a population's work files for as long as this process lives."""
    owned = Claim(workdir, image_id, token)
    lock_path = owned.file(LOCK)
    fd = _locked(lock_path)
    try:
        yield owned
    finally:
        owned.remove_files()
        unlink(lock_path)
        os.close(fd)


def _groups(workdir: str) -> dict:
    """{'<image id>.<token>.': [file names]} of the directory."""
    groups = {}
    for name in os.listdir(workdir):
        parts = name.split('.')
        if len(parts) == 3:
            groups.setdefault(_prefix(*parts[:2]), []).append(name)
    return groups


@contextlib.contextmanager
def _if_owner_dead(lock_path: str):
    """Yield True holding the flock if its owner is gone, else False.

    No lock file: the files' owner is gone too (it creates it first and
    removes it last).
    """
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)   # drops the flock, after the removal


def sweep(workdir: str) -> list:
    """Remove the files of populations whose process is gone.

    :returns: the names removed.
    """
    removed = []
    for prefix, names in _groups(workdir).items():
        with _if_owner_dead(os.path.join(workdir, prefix + LOCK)) as dead:
            if not dead:
                continue
            for name in sorted(names, key=lambda n: n.endswith(LOCK)):
                unlink(os.path.join(workdir, name))   # the lock file last
                removed.append(name)
    if removed:
        LOG.warning('removed %(n)d files left in %(dir)s by populations '
                    'that died with their process: %(names)s',
                    {'n': len(removed), 'dir': workdir,
                     'names': ', '.join(removed)})
    return removed


def sweep_quietly(conf) -> None:
    """sweep() the configured work directory; never fail the caller."""
    directory = where(conf)
    if not os.path.isdir(directory):
        return
    try:
        sweep(directory)
    except OSError as e:
        LOG.warning('could not sweep the fastclone work directory: %(err)s',
                    {'err': e})
