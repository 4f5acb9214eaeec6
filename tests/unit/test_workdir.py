"""The host's work directory: crashed populations' files go, live ones stay.

A dead owner is a real process killed with SIGKILL while it holds its
claim: the kernel drops its flock, as on a crash.
"""

import os
import signal
import subprocess
import sys
from unittest import mock

from fastclone_backend.cache import workdir

IMAGE_ID = '7d1f3c2a-9b8e-4f6d-a5c4-3b2a19087f6e'

OWNER = '''
import sys, time
from fastclone_backend.cache import workdir
with workdir.claim(sys.argv[1], sys.argv[2], 'dead0001') as files:
    open(files.file('download'), 'wb').write(b'x' * 4096)
    print('claimed', flush=True)
    time.sleep(600)
'''


def _killed_owner(tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', OWNER, str(tmp_path),
                             IMAGE_ID], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'claimed'
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_claim_names_its_files_and_removes_them(tmp_path):
    with workdir.claim(str(tmp_path), IMAGE_ID, 'ab12cd34') as files:
        download = files.file('download')
        assert download == str(tmp_path / ('%s.ab12cd34.download'
                                           % IMAGE_ID))
        open(download, 'wb').write(b'data')
        open(files.file('raw'), 'wb').write(b'data')
        assert sorted(os.listdir(tmp_path)) == sorted(
            '%s.ab12cd34.%s' % (IMAGE_ID, k)
            for k in ('download', 'raw', 'lock'))
    assert os.listdir(tmp_path) == []


def test_files_of_a_killed_population_are_swept(tmp_path):
    _killed_owner(tmp_path)
    left = sorted(os.listdir(tmp_path))
    assert left == ['%s.dead0001.download' % IMAGE_ID,
                    '%s.dead0001.lock' % IMAGE_ID]
    assert sorted(workdir.sweep(str(tmp_path))) == left
    assert os.listdir(tmp_path) == []


def test_files_of_a_live_population_stay(tmp_path):
    with workdir.claim(str(tmp_path), IMAGE_ID, 'live0001') as files:
        open(files.file('download'), 'wb').write(b'data')
        assert workdir.sweep(str(tmp_path)) == []
        assert os.path.exists(files.file('download'))


def test_files_without_a_lock_are_leftovers(tmp_path):
    # a lock file is created before any data file and removed after all
    stale = tmp_path / ('%s.old00001.download' % IMAGE_ID)
    stale.write_bytes(b'x')
    other = tmp_path / 'notes.txt'
    other.write_bytes(b'not ours')
    assert workdir.sweep(str(tmp_path)) == [stale.name]
    assert os.listdir(tmp_path) == ['notes.txt']


def test_sweep_of_a_missing_directory_is_nothing(tmp_path):
    class Conf:
        instances_path = str(tmp_path)

        class fastclone:
            work_dir = None
    workdir.sweep_quietly(Conf)
    assert not os.path.exists(tmp_path / 'fastclone')


def test_claim_swept_before_it_held_its_lock_makes_a_new_one(tmp_path):
    real_flock = workdir.fcntl.flock
    swept = []

    def sweep_in_between(fd, op):
        if op == workdir.fcntl.LOCK_EX and not swept:
            # a sweep between the claim's open and its flock
            swept.append(workdir.sweep(str(tmp_path)))
        return real_flock(fd, op)
    with mock.patch.object(workdir.fcntl, 'flock', sweep_in_between):
        with workdir.claim(str(tmp_path), IMAGE_ID, 'race0001') as files:
            assert swept == [['%s.race0001.lock' % IMAGE_ID]]
            open(files.file('download'), 'wb').write(b'data')
            # the claim holds the lock file now at its name
            assert workdir.sweep(str(tmp_path)) == []
            assert os.path.exists(files.file('download'))
    assert os.listdir(tmp_path) == []
