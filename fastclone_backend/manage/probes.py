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

"""What the doctor reads: thin I/O around :mod:`fastclone_backend.doctor`.

Each probe reads one thing (nova.conf here, the cluster in
:mod:`cephprobe`, Glance and the images in :mod:`glanceprobe`, the host
here) and hands plain facts to a verdict function.
"""

import os
import shutil
import subprocess

import nova.conf

from fastclone_backend import doctor
from fastclone_backend import hook
from fastclone_backend.manage import cephprobe
from fastclone_backend.manage import glanceprobe

CONF = nova.conf.CONF
CMD_TIMEOUT = cephprobe.CMD_TIMEOUT


def conf_checks() -> list:
    lv = CONF.libvirt
    return [
        doctor.check_images_type(hook._state['requested'] or
                                 lv.images_type),
        doctor.check_required('[libvirt] images_rbd_pool',
                              lv.images_rbd_pool, 'vms'),
        doctor.check_ceph_conf(lv.images_rbd_ceph_conf,
                               bool(lv.images_rbd_ceph_conf) and
                               os.path.isfile(lv.images_rbd_ceph_conf)),
        doctor.check_rbd_user(lv.rbd_user),
    ]


def qemu_check():
    if shutil.which('qemu-img') is None:
        return doctor.check_qemu_img('', (), True)
    version = subprocess.run(['qemu-img', '--version'], capture_output=True,
                             text=True, timeout=CMD_TIMEOUT).stdout
    helptext = subprocess.run(['qemu-img', '--help'], capture_output=True,
                              text=True, timeout=CMD_TIMEOUT).stdout
    formats = ()
    for line in helptext.splitlines():
        if line.startswith('Supported formats:'):
            formats = line.split(':', 1)[1].split()
    return doctor.check_qemu_img(version.splitlines()[0].strip(), formats,
                                 CONF.fastclone.convert_direct_to_rbd)


def nova_check():
    from nova import version
    return doctor.check_nova_version(version.version_string())


# ---------------------------------------------------------------- Glance
def run_all(context) -> list:
    found = conf_checks()
    client, verdict = cephprobe.connect()
    found.append(verdict)
    if client is not None:
        try:
            found += cephprobe.ceph_checks(client)
        finally:
            client.shutdown()
    found.append(qemu_check())
    found += glanceprobe.glance_checks(context, client is not None)
    found.append(nova_check())
    return found
