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

"""The lab's guest: its images, its console marker, a boot by plain QEMU.

``tools/lab.d/guest-image DIR`` builds ``alpha`` and ``beta``: 64 MiB raw
disks (and their qcow2 conversions) whose init prints one line on the serial
console::

    FASTCLONE-GUEST image=alpha uuid=<smbios uuid> sum=<sha256> disk=vda \
uptime=2.41

``sum`` is the sha256 of the root disk's first ``REGION_BYTES``; the builder
writes the value it expects next to the raw file (``alpha.raw.sum``).
``uuid`` is the SMBIOS system uuid in lowercase: Nova's libvirt driver sets it
to the instance uuid.
"""

import dataclasses
import hashlib
import os
import re
import subprocess
import tempfile
import time
import uuid as uuidlib

MARKER = 'FASTCLONE-GUEST'
REGION_BYTES = 4 << 20
NO_BOOT = 'No bootable device'
IMAGE_NAMES = ('alpha', 'beta')
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDER = os.path.join(_REPO, 'tools', 'lab.d', 'guest-image')

# the marker's name and its key=value fields up to the end of the line; a
# serial console ends lines with \r\n and may be cut in the middle of a line
_LINE = re.compile(MARKER + r'((?: +[a-z]+=[^\s=]+)+) *\r?\n')
_FIELD = re.compile(r'([a-z]+)=(\S+)')
_REQUIRED = ('image', 'uuid', 'sum')


def parse_markers(text: str) -> list:
    """Every complete marker line in a console log, oldest first.

    Each is a dict of its fields (str values); a line that lacks one of
    image, uuid or sum, or was cut off before its end, is not a marker.
    """
    found = []
    for m in _LINE.finditer(text):
        fields = dict(_FIELD.findall(m.group(1)))
        if all(k in fields for k in _REQUIRED):
            found.append(fields)
    return found


def parse_marker(text: str):
    """The last marker of a console log (the current boot's), or None.

    A console log that virtlogd appends to across reboots and rebuilds holds
    one marker per boot; the last one is the guest running now.
    """
    markers = parse_markers(text)
    return markers[-1] if markers else None


def no_boot(text: str) -> bool:
    """True if SeaBIOS found nothing to boot.

    A serial console shows it only when the firmware writes there, as with
    QEMU's -nographic; Nova's domains do not ask SeaBIOS for that.
    """
    return NO_BOOT in text


def expected_sum(image: str) -> str:
    """The sum the guest reports for an image: read from <name>.raw.sum.

    image: the path of the raw or qcow2 file, or of the .sum file itself.
    """
    base, ext = os.path.splitext(image)
    if ext == '.sum':
        path = image
    elif ext == '.qcow2':
        path = base + '.raw.sum'
    else:
        path = image + '.sum'
    with open(path) as f:
        value = f.read().strip()
    if not re.fullmatch(r'[0-9a-f]{64}', value):
        raise ValueError('%s does not hold a sha256: %r' % (path, value))
    return value


def region_sum(raw_path: str) -> str:
    """sha256 of a raw disk file's first REGION_BYTES, as the guest does.

    A file shorter than that is hashed as it is.
    """
    with open(raw_path, 'rb') as f:
        return hashlib.sha256(f.read(REGION_BYTES)).hexdigest()


def build_images(cache_dir: str, names=IMAGE_NAMES) -> dict:
    """Build (or find cached) guest images; returns {name: raw path}."""
    subprocess.run([BUILDER, cache_dir] + list(names), check=True)
    return {n: os.path.join(cache_dir, n + '.raw') for n in names}


def read_console(path: str) -> str:
    """A console log's text ('' while it does not exist yet)."""
    try:
        return _read(path)
    except FileNotFoundError:
        return ''


def wait_marker(path: str, timeout: float = 120.0, want: dict = None):
    """Poll a console log until its last marker has the wanted fields.

    want: e.g. {'image': 'beta', 'uuid': instance_uuid} (None: any marker).
    Returns (marker, seconds waited); (None, seconds) after timeout.
    """
    want = want or {}
    start = time.monotonic()
    while True:
        marker = parse_marker(read_console(path))
        elapsed = time.monotonic() - start
        if marker and all(marker.get(k) == v for k, v in want.items()):
            return marker, elapsed
        if elapsed > timeout:
            return None, elapsed
        time.sleep(0.1)


@dataclasses.dataclass
class Boot:
    marker: object        # dict of the marker's fields, or None
    seconds: float        # from QEMU's start to the marker (or to giving up)
    console: str          # the serial console's text
    no_boot: bool         # SeaBIOS said "No bootable device"


def _read(path: str) -> str:
    with open(path, 'rb') as f:
        return f.read().decode('utf-8', 'replace')


def _qemu_cmd(disk: str, fmt: str, uuid: str) -> list:
    return ['qemu-system-x86_64', '-accel', 'tcg', '-m', '128', '-smp', '1',
            '-nographic', '-no-reboot',
            '-drive', 'file=%s,format=%s,if=virtio,readonly=on' % (disk, fmt),
            '-smbios', 'type=1,uuid=%s,serial=%s' % (uuid, uuid)]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def boot_plain(disk: str, fmt: str = 'raw', uuid: str = None,
               timeout: float = 60.0, console_path: str = None) -> Boot:
    """Boot a local disk file with plain QEMU (TCG, 128 MiB, 1 vCPU).

    Its serial console (and SeaBIOS's, through -nographic) goes to
    console_path (a temporary file if None).  Returns as soon as a marker or
    "No bootable device" appears, or after timeout seconds; QEMU is stopped
    in every case.  The disk is opened read-only.
    """
    uuid = uuid or str(uuidlib.uuid4())
    tmp = None
    if console_path is None:
        tmp = tempfile.NamedTemporaryFile(prefix='guest-console-',
                                          suffix='.log', delete=False)
        console_path = tmp.name
        tmp.close()
    try:
        return _boot(disk, fmt, uuid, timeout, console_path)
    finally:
        if tmp is not None:
            os.unlink(console_path)


def _boot(disk, fmt, uuid, timeout, console_path) -> Boot:
    with open(console_path, 'wb') as out:
        start = time.monotonic()
        proc = subprocess.Popen(_qemu_cmd(disk, fmt, uuid),
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            while True:
                text = _read(console_path)
                elapsed = time.monotonic() - start
                marker = parse_marker(text)
                if marker or no_boot(text) or proc.poll() is not None \
                        or elapsed > timeout:
                    return Boot(marker, elapsed, text, no_boot(text))
                time.sleep(0.05)
        finally:
            _stop(proc)
