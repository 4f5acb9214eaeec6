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

"""One lab compute host's libvirtd, through tools/lab.d/libvirt-host.

Each host (its own hostname, domains, secrets, sockets) lives under
``<base>/<name>``; nova-compute and virsh reach it with ``uri()``.
"""

import dataclasses
import os
import subprocess
import tempfile

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(_REPO, 'tools', 'lab.d', 'libvirt-host')


@dataclasses.dataclass(frozen=True)
class LibvirtHost:
    name: str
    base: str   # the DIR argument: the host's state is in base/name

    def _run(self, *args, timeout=180, env=None) -> str:
        proc = subprocess.run([SCRIPT, args[0], self.name, self.base]
                              + list(args[1:]), capture_output=True,
                              text=True, timeout=timeout, env=env)
        if proc.returncode:
            raise RuntimeError('libvirt-host %s %s failed (rc %d): %s' % (
                args[0], self.name, proc.returncode, proc.stderr[-2000:]))
        return proc.stdout

    def up(self, peers: tuple = ()) -> None:
        """Start the host (idempotent).

        peers: the other hosts' names, which resolve to 127.0.0.1 in its
        namespace (written again on every up).
        """
        env = dict(os.environ, LIBVIRT_HOST_PEERS=' '.join(peers))
        self._run('up', env=env)

    def resolve(self, name: str) -> str:
        """The address name resolves to in the host's namespace.

        As libvirtd's getaddrinfo sees it; '' if none.
        """
        with open(os.path.join(self.base, self.name, 'holder.pid')) as f:
            holder = f.read().strip()
        proc = subprocess.run(['nsenter', '--target', holder, '--mount',
                               '--uts', '--', 'getent', 'ahostsv4', name],
                              capture_output=True, text=True, timeout=30)
        return proc.stdout.split()[0] if proc.stdout.split() else ''

    def down(self) -> None:
        self._run('down')

    def uri(self) -> str:
        return self._run('uri').strip()

    def is_up(self) -> bool:
        return subprocess.run([SCRIPT, 'status', self.name, self.base],
                              capture_output=True).returncode == 0

    def secret(self, uuid: str, key: str) -> None:
        """Define the ceph secret uuid (usage client.nova) with a key."""
        with tempfile.NamedTemporaryFile('w', prefix='key-') as f:
            f.write(key)
            f.flush()
            self._run('secret', uuid, f.name)

    def virsh(self, *args, timeout=60) -> str:
        proc = subprocess.run(['virsh', '-q', '-c', self.uri()] + list(args),
                              capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode:
            raise RuntimeError('virsh %s on %s failed: %s' % (
                ' '.join(args), self.name, proc.stderr.strip()))
        return proc.stdout


def rbd_domain_xml(name: str, uuid: str, disk: str, secret_uuid: str,
                   mon_host: str, mon_port: int, console_log: str,
                   rbd_user: str = 'nova') -> str:
    """A small TCG domain booting RBD image disk (pool/image), as Nova's.

    128 MiB, 1 vCPU, SMBIOS system uuid and serial = uuid (Nova's sysinfo),
    serial console logged by virtlogd to console_log.
    """
    return """<domain type='qemu'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <sysinfo type='smbios'>
    <system>
      <entry name='manufacturer'>OpenStack Foundation</entry>
      <entry name='product'>OpenStack Nova</entry>
      <entry name='serial'>%(uuid)s</entry>
      <entry name='uuid'>%(uuid)s</entry>
      <entry name='family'>Virtual Machine</entry>
    </system>
  </sysinfo>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
    <smbios mode='sysinfo'/>
  </os>
  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='writeback' discard='unmap'/>
      <auth username='%(user)s'><secret type='ceph' uuid='%(secret)s'/></auth>
      <source protocol='rbd' name='%(disk)s'>
        <host name='%(mon)s' port='%(port)d'/>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'><log file='%(log)s' append='off'/></serial>
    <console type='pty'/>
  </devices>
</domain>
""" % {'name': name, 'uuid': uuid, 'user': rbd_user, 'secret': secret_uuid,
       'disk': disk, 'mon': mon_host, 'port': mon_port, 'log': console_log}
