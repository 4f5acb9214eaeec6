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

"""One Nova root disk at a time, through Nova's own driver code.

For the demo, the benchmark and the functional tests that exercise the
cache, the spawn path and faults disk by disk: parse a nova.conf as
nova-compute does (with the hook), then make a root disk by calling Nova's
own ``LibvirtDriver._create_and_inject_local_root`` (``Backend.by_name``,
``clone_fallback_to_fetch``, ``_try_fetch_image_cache``, ``Image.cache()``)
on a driver that has only its image backend: no libvirt, message queue,
database or compute manager.  Every instance action through Nova's real
services is tested in ``tests/functional/novaactionshost.py``.
"""

import dataclasses
import functools
import os
import uuid

from fastclone_backend import deploysettings

# What only this process needs; the [libvirt] and [fastclone] settings of a
# fastrbd host come first, from fastclone_backend.deploysettings (the source
# the devstack plugin writes nova-compute's config from).
NOVA_CONF = """{deployment}[DEFAULT]
instances_path = {instances}
[glance]
endpoint_override = {glance_url}
[oslo_concurrency]
lock_path = {locks}
{extra}"""


@dataclasses.dataclass
class Settings:
    ceph_conf: str
    rbd_user: str
    pool: str
    glance_url: str
    glance_token: str
    workdir: str
    images_type: str = 'fastrbd'
    extra: str = ''  # more nova.conf text, e.g. a [fastclone] section
    images_pool: str = 'images'  # Glance's rbd store pool


def deployment_settings(settings: Settings) -> list:
    """[(section, option, value)] of a fastrbd host, for this lab.

    From :mod:`fastclone_backend.deploysettings`, with ``images_type`` as
    settings asks (the benchmarks also run stock ``rbd`` and ``qcow2``).
    """
    rendered = deploysettings.render(deploysettings.NOVA_COMPUTE, {
        'vms_pool': settings.pool, 'ceph_conf': settings.ceph_conf,
        'nova_user': settings.rbd_user, 'images_pool': settings.images_pool})
    return [(section, option, settings.images_type
             if (section, option) == ('libvirt', 'images_type') else value)
            for section, option, value in rendered]


def write_nova_conf(settings: Settings) -> str:
    path = os.path.join(settings.workdir, 'nova.conf')
    os.makedirs(settings.workdir, exist_ok=True)
    with open(path, 'w') as f:
        f.write(NOVA_CONF.format(
            deployment=deploysettings.ini_text(deployment_settings(settings)),
            instances=os.path.join(settings.workdir, 'instances'),
            glance_url=settings.glance_url,
            locks=os.path.join(settings.workdir, 'locks'),
            extra=settings.extra))
    return path


def start(settings: Settings, hooked: bool = True):
    """Parse nova.conf like nova-compute(-fastrbd); returns a context."""
    from nova import config
    from nova import context
    from nova import objects

    from fastclone_backend import hook

    if hooked:
        hook.install()
    config.parse_args(['nova-compute', '--config-file',
                       write_nova_conf(settings)],
                      configure_db=False, init_rpc=False)
    objects.register_all()
    return context.RequestContext(user_id='fastclone', project_id='fastclone',
                                  auth_token=settings.glance_token)


def make_instance(root_gb: int):
    from nova.compute import vm_states
    from nova import objects
    return objects.Instance(uuid=str(uuid.uuid4()), task_state=None,
                            vm_state=vm_states.BUILDING,
                            flavor=objects.Flavor(root_gb=root_gb),
                            trusted_certs=None, migration_context=None,
                            config_drive='', system_metadata={},
                            image_ref=None)


def root_disk(instance):
    return _driver().image_backend.by_name(instance, 'disk')


def settings_from_env(workdir: str, extra: str = '') -> Settings:
    """Settings for the lab (or deployment) named by FASTCLONE_* vars."""
    env = os.environ
    return Settings(ceph_conf=env['FASTCLONE_CEPH_CONF'],
                    rbd_user=env['FASTCLONE_NOVA_RBD_USER'],
                    pool=env['FASTCLONE_VMS_POOL'],
                    glance_url=env['FASTCLONE_GLANCE_URL'],
                    glance_token=env['FASTCLONE_GLANCE_TOKEN'],
                    workdir=workdir, extra=extra,
                    images_pool=env['FASTCLONE_IMAGES_POOL'])


class _RootDiskDriver:
    """The part of LibvirtDriver that makes a root disk: Nova's own code."""

    def __init__(self):
        import nova.conf
        from nova.virt.libvirt import driver
        from nova.virt.libvirt import imagebackend
        self.image_backend = imagebackend.Backend(
            nova.conf.CONF.use_cow_images)
        cls = driver.LibvirtDriver
        for name in ('_create_and_inject_local_root', '_try_fetch_image_cache',
                     '_rebase_original_qcow2_image',
                     '_needs_rebase_original_qcow2_image'):
            setattr(self, name, getattr(cls, name).__get__(self))


@functools.lru_cache(maxsize=None)
def _driver() -> _RootDiskDriver:
    """This process's driver, made once as nova-compute makes its own."""
    return _RootDiskDriver()


DISK_MAPPING = {'disk': {'bus': 'virtio', 'dev': 'vda', 'type': 'disk'}}


def create_root_disk(ctx, instance, image_id):
    """The root disk as LibvirtDriver.spawn makes it; returns the Image."""
    instance.image_ref = image_id   # as Nova's instance being built from it
    _driver()._create_and_inject_local_root(
        ctx, instance, DISK_MAPPING, booted_from_volume=False, suffix='',
        disk_images={'image_id': image_id}, injection_info=None,
        fallback_from_host=None)
    return root_disk(instance)


def delete_instance_disks(instance):
    """What LibvirtDriver.cleanup does for images_type == 'rbd'."""
    import nova.conf
    from nova.virt.libvirt import driver

    if nova.conf.CONF.libvirt.images_type != 'rbd':
        raise RuntimeError('Nova would not take its rbd cleanup path: '
                           'images_type is %s'
                           % nova.conf.CONF.libvirt.images_type)
    driver.LibvirtDriver._cleanup_rbd(None, instance)
