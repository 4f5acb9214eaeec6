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

"""Never trust an image: inspect a downloaded file before qemu-img converts it.

The checks run from the cheapest and safest to the most expensive, and no
qemu-img process sees the file before oslo.utils' format inspector has
matched its content to the declared ``disk_format`` and passed its safety
checks (as Nova's ``do_image_deep_inspection`` does):

#. the declared ``disk_format`` is one we support;
#. the content is what was declared (declared raw, detected gpt is accepted
   as raw: a legacy whole-disk image);
#. a vmdk is a single sparse file, not a descriptor naming extent files;
#. the inspector's safety checks pass (no backing file, no data file, ...);
#. ``qemu-img info``, under prlimit, agrees: same format, no backing file, no
   data file, an allowed vmdk create-type whose only extent is the file;
#. the virtual size fits the flavor's root disk;
#. a qcow2 passes ``qemu-img check`` (leaked clusters alone are harmless).

Every refusal is an :class:`ImageRejected` naming the image and the reason.
"""

from collections.abc import Sequence
import dataclasses
import json
import os

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector

from fastclone_backend import exception

LOG = logging.getLogger(__name__)

SUPPORTED_FORMATS = ('raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi', 'iso')
VMDK_ALLOWED_TYPES = ('streamOptimized', 'monolithicSparse')
# Glance's disk_format -> qemu-img's -f, where the two names differ.
QEMU_FORMATS = {'vhd': 'vpc', 'iso': 'raw'}
# (declared, detected) pairs accepted although the names differ.
ACCEPTED_MISMATCHES = frozenset([('raw', 'gpt')])
# A monolithicSparse or streamOptimized vmdk starts with a sparse header;
# a text descriptor file (monolithicFlat, twoGbMaxExtent*, ...) does not.
VMDK_SPARSE_MAGIC = b'KDMV'
# How Nova limits qemu-img info ([libvirt] images_*_limit defaults).
QEMU_IMG_LIMITS = processutils.ProcessLimits(cpu_time=30,
                                             address_space=1 << 30)
QEMU_IMG_ENV = {'LC_ALL': 'C', 'LANG': 'C'}
# qemu-img check exit codes.
CHECK_CLEAN = 0
CHECK_CORRUPT = 2
CHECK_LEAKS_ONLY = 3
CHECK_DAMAGE_KEYS = (('corruptions', 'corruptions'),
                     ('check-errors', 'check errors'))
BACKING_KEYS = ('backing-filename', 'full-backing-filename')
MAX_REASON_LINE = 300


ImageRejected = exception.ImageRejected


@dataclasses.dataclass(frozen=True)
class Inspection:
    """What an accepted image is, for the conversion that follows."""

    disk_format: str
    qemu_format: str
    virtual_size: int
    actual_size: int


def qemu_format_for(disk_format: str) -> str:
    """The name qemu-img -f needs for a Glance disk_format."""
    return QEMU_FORMATS.get(disk_format, disk_format)


def _reject(image_id: str, reason: str) -> ImageRejected:
    return ImageRejected(image=image_id, reason=reason)


def _trim(text: str | None, empty: str = 'no error output') -> str:
    """The first line of a tool's output, bounded, for a reason."""
    lines = [line.strip() for line in (text or '').splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return empty
    first = lines[0][:MAX_REASON_LINE]
    if len(lines) > 1:
        first += ' (and %d more lines)' % (len(lines) - 1)
    return first


def _check_supported(image_id: str, disk_format: str) -> None:
    if (disk_format not in SUPPORTED_FORMATS
            or format_inspector.get_inspector(disk_format) is None):
        raise _reject(image_id, 'disk_format %r is not supported '
                      '(supported: %s)'
                      % (disk_format, ', '.join(SUPPORTED_FORMATS)))


def _detect(image_id: str, path: str) -> format_inspector.FileInspector:
    try:
        inspector = format_inspector.detect_file_format(path)
    except format_inspector.ImageFormatError as err:
        raise _reject(image_id, 'content could not be identified: %s' % err)
    if inspector is None:
        raise _reject(image_id, 'content could not be identified')
    return inspector


def _check_content(image_id: str, disk_format: str, detected: str) -> None:
    if (detected == disk_format
            or (disk_format, detected) in ACCEPTED_MISMATCHES):
        return
    if detected == 'raw':
        detected = 'raw (no known image header)'
    raise _reject(image_id, 'content is %s but disk_format is %s'
                  % (detected, disk_format))


# disk_format values Glance accepts, to say which one to upload again with
GLANCE_DISK_FORMATS = ('raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi', 'iso',
                       'ploop', 'ami', 'ari', 'aki')


def check_clone_content(image_id: str, source: str, disk_format: str,
                        detected: str, detail: str = '') -> None:
    """Refuse a snapshot to clone whose bytes are not what Glance declares.

    :param source: where the bytes are (pool/image@snap), for the message.
    :param detected: the format the inspector found in its head.
    :param detail: what the inspector's safety checks found, if anything.
    """
    if (detected == disk_format
            or (disk_format, detected) in ACCEPTED_MISMATCHES):
        return
    glance_name = {'vpc': 'vhd'}.get(detected, detected)
    if glance_name in GLANCE_DISK_FORMATS:
        todo = ('upload it again with disk_format %s, or convert it to %s '
                'and upload that' % (glance_name, disk_format))
    else:
        todo = ('convert it to %s (qemu-img convert -O %s) and upload it '
                'again' % (disk_format, qemu_format_for(disk_format)))
    raise _reject(image_id, 'disk_format is %s but the data in %s is %s%s; '
                  'cloned as it is, the guest would find no bootable disk: '
                  '%s' % (disk_format, source, detected,
                          ' (%s)' % detail if detail else '', todo))


def _check_vmdk_sparse(image_id: str, path: str) -> None:
    """Refuse a vmdk descriptor file: its data lives in other files."""
    with open(path, 'rb') as f:
        magic = f.read(len(VMDK_SPARSE_MAGIC))
    if magic != VMDK_SPARSE_MAGIC:
        raise _reject(image_id, 'vmdk is a text descriptor whose data is in '
                      'separate extent files (flat or split extents are '
                      'not allowed, only a single sparse vmdk)')


def _failures(failures: dict) -> str:
    return ', '.join('%s (%s)' % (name, why)
                     for name, why in failures.items())


def _check_safety(image_id: str,
                  inspector: format_inspector.FileInspector) -> None:
    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as err:
        raise _reject(image_id, '%s failed safety checks: %s'
                      % (inspector, _failures(err.failures)))
    except format_inspector.ImageFormatError as err:
        raise _reject(image_id, '%s could not be safety checked: %s'
                      % (inspector, err))


def _execute(*args: str) -> str:
    """Run qemu-img as Nova does: prlimit, C locale; return its stdout.

    processutils replaces the whole environment with env_variables, so PATH
    is passed on.
    """
    env = dict(QEMU_IMG_ENV, PATH=os.environ.get('PATH', os.defpath))
    out, _err = processutils.execute('qemu-img', *args,
                                     prlimit=QEMU_IMG_LIMITS,
                                     env_variables=env)
    return out


def _failed(command: str, exit_code: int | None, stderr: str | None) -> str:
    if exit_code is not None and exit_code < 0:
        return ('qemu-img %s was killed by signal %d (limits: %d s CPU, '
                '%d bytes of address space)'
                % (command, -exit_code, QEMU_IMG_LIMITS.cpu_time,
                   QEMU_IMG_LIMITS.address_space))
    return 'qemu-img %s failed: %s' % (command, _trim(stderr))


def _parse_json(image_id: str, command: str, out: str | None) -> dict:
    try:
        report = json.loads(out or '')
    except ValueError:
        report = None
    if not isinstance(report, dict):
        raise _reject(image_id, 'qemu-img %s printed no JSON object: %s'
                      % (command, _trim(out, empty='no output')))
    return report


def _qemu_img_info(image_id: str, path: str, qemu_format: str) -> dict:
    try:
        out = _execute('info', '-f', qemu_format, '--output=json',
                       '--force-share', path)
    except processutils.ProcessExecutionError as err:
        raise _reject(image_id, _failed('info', err.exit_code, err.stderr))
    return _parse_json(image_id, 'info', out)


def _format_specific(info: dict) -> dict:
    """The format-specific data of qemu-img info, or {}."""
    specific = info.get('format-specific')
    data = specific.get('data') if isinstance(specific, dict) else None
    return data if isinstance(data, dict) else {}


def _check_info(image_id: str, qemu_format: str, info: dict) -> None:
    if info.get('format') != qemu_format:
        raise _reject(image_id, 'qemu-img info reports format %s, expected %s'
                      % (info.get('format'), qemu_format))
    for key in BACKING_KEYS:
        if key in info:
            raise _reject(image_id, '%s has a backing file: %s'
                          % (qemu_format, info[key]))
    specific = _format_specific(info)
    if 'data-file' in specific:
        raise _reject(image_id, '%s has an external data file: %s'
                      % (qemu_format, specific['data-file']))


def _check_vmdk_info(image_id: str, path: str, info: dict,
                     allowed_types: Sequence[str]) -> None:
    specific = _format_specific(info)
    create_type = specific.get('create-type')
    if create_type is None:
        raise _reject(image_id, 'vmdk create-type could not be determined')
    if create_type not in allowed_types:
        raise _reject(image_id, 'vmdk create-type %s is not allowed '
                      '(vmdk_allowed_types: %s)'
                      % (create_type, ', '.join(allowed_types) or 'none'))
    for extent in specific.get('extents') or []:
        if extent.get('filename') != path:
            raise _reject(image_id, 'vmdk has an extent in another file: %s'
                          % extent.get('filename'))


def _virtual_size(image_id: str, info: dict) -> int:
    size = info.get('virtual-size')
    if type(size) is not int or size < 0:
        raise _reject(image_id, 'qemu-img info reports no virtual size')
    return size


def _check_size(image_id: str, size: int, max_size: int | None) -> None:
    if max_size is not None and size > max_size:
        raise _reject(image_id, "virtual size %d bytes exceeds the flavor's "
                      'root disk of %d bytes' % (size, max_size))


def _run_qcow2_check(path: str) -> tuple[int, str, str]:
    """Run qemu-img check: (exit code, stdout, stderr)."""
    try:
        out = _execute('check', '-f', 'qcow2', '--output=json', path)
    except processutils.ProcessExecutionError as err:
        return err.exit_code, err.stdout or '', err.stderr or ''
    return CHECK_CLEAN, out, ''


def _damage(report: dict) -> str:
    """'N corruptions, M check errors' from a check report, or ''."""
    counts = [(report.get(key) or 0, label)
              for key, label in CHECK_DAMAGE_KEYS]
    return ', '.join('%s %s' % (count, label)
                     for count, label in counts if count)


def _check_qcow2(image_id: str, path: str) -> None:
    """qemu-img check: exit 0 clean, 3 leaks only (harmless), else reject."""
    exit_code, out, err = _run_qcow2_check(path)
    if exit_code not in (CHECK_CLEAN, CHECK_CORRUPT, CHECK_LEAKS_ONLY):
        raise _reject(image_id, _failed('check', exit_code, err))
    report = _parse_json(image_id, 'check', out)
    damage = _damage(report)
    if damage or exit_code == CHECK_CORRUPT:
        details = [damage or 'qemu-img check exit code %d' % exit_code]
        if err.strip():
            details.append(_trim(err))
        raise _reject(image_id, 'qcow2 is damaged: ' + ': '.join(details))
    if exit_code == CHECK_LEAKS_ONLY:
        LOG.debug('image %(image)s: qcow2 has %(leaks)s leaked clusters, '
                  'harmless', {'image': image_id,
                               'leaks': report.get('leaks')})


def _inspect_content(image_id: str, path: str, disk_format: str) -> None:
    """Everything that reads the file in Python, before any qemu-img."""
    _check_supported(image_id, disk_format)
    inspector = _detect(image_id, path)
    LOG.debug('image %(image)s: declared %(declared)s, detected %(detected)s',
              {'image': image_id, 'declared': disk_format,
               'detected': inspector})
    _check_content(image_id, disk_format, str(inspector))
    if disk_format == 'vmdk':
        _check_vmdk_sparse(image_id, path)
    _check_safety(image_id, inspector)


def _inspect_info(image_id: str, path: str, disk_format: str,
                  vmdk_allowed_types: Sequence[str]) -> int:
    """Check what qemu-img info reports; return the virtual size."""
    qemu_format = qemu_format_for(disk_format)
    info = _qemu_img_info(image_id, path, qemu_format)
    _check_info(image_id, qemu_format, info)
    if disk_format == 'vmdk':
        _check_vmdk_info(image_id, path, info, vmdk_allowed_types)
    return _virtual_size(image_id, info)


def inspect_image(path: str, image_id: str, disk_format: str,
                  max_virtual_size: int | None = None,
                  vmdk_allowed_types: Sequence[str] = VMDK_ALLOWED_TYPES
                  ) -> Inspection:
    """Return what the image file at path is, or raise ImageRejected.

    :param path: the downloaded image file, not yet touched by qemu-img.
    :param image_id: the Glance image id, for the messages.
    :param disk_format: the disk_format Glance declares for the image.
    :param max_virtual_size: the flavor's root disk in bytes, if bounded.
    :param vmdk_allowed_types: the vmdk create-types accepted.
    :raises ImageRejected: with the reason, at the first check that fails.
    """
    path = os.path.abspath(path)
    _inspect_content(image_id, path, disk_format)
    virtual_size = _inspect_info(image_id, path, disk_format,
                                 vmdk_allowed_types)
    _check_size(image_id, virtual_size, max_virtual_size)
    if disk_format == 'qcow2':
        _check_qcow2(image_id, path)
    result = Inspection(disk_format=disk_format,
                        qemu_format=qemu_format_for(disk_format),
                        virtual_size=virtual_size,
                        actual_size=os.stat(path).st_size)
    LOG.debug('image %(image)s accepted: %(result)s',
              {'image': image_id, 'result': result})
    return result
