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

"""Activation inside Nova, which has no plugin hook for image backends.

:func:`install` does four things, all undone by :func:`uninstall`:

1. ``[libvirt] images_type`` accepts ``fastrbd`` (one more choice);
2. after Nova parses its config, ``fastrbd`` is turned into ``rbd`` with an
   override, so every ``images_type == 'rbd'`` branch of Nova's libvirt
   driver (cleanup, config drive, disk accounting, live migration) runs;
3. ``imagebackend.Backend`` maps both ``rbd`` and ``fastrbd`` to FastRbd;
4. ``LibvirtDriver.manage_image_cache`` (Nova's periodic image-cache pass)
   also runs the cluster-wide lifecycle pass
   (:mod:`fastclone_backend.lifecycle.runner`) when Nova runs as rbd, and
   records this process's counters in RADOS
   (:mod:`fastclone_backend.cache.statsstore`);
5. ``LibvirtDriver.cache_image`` (Nova's image precache API) warms the
   Ceph base instead of the local ``_base`` when Nova runs as rbd
   (:mod:`fastclone_backend.spawn.precache`).

Both the driver's start (the first ``Backend``) and each periodic pass
also sweep this host's work directory of files left by populations that
died with their process (:mod:`fastclone_backend.cache.workdir`).

Without it, ``images_type = fastrbd`` is an invalid value and nova-compute
stops at start-up with oslo.config's error: never a silent stock ``Rbd``.
"""

import functools

from oslo_log import log as logging

from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend import releases

LOG = logging.getLogger(__name__)

FASTRBD = 'fastrbd'
CHOICE_HELP = ('Ceph RBD copy-on-write clones by fastclone-backend; Nova '
               'runs it as rbd (needs nova-compute-fastrbd)')

_saved = {}
_state = {'requested': None, 'announced': False, 'overridden': None}


def _images_type_opt():
    from nova.conf import libvirt as libvirt_conf
    for opt in libvirt_conf.libvirt_imagebackend_opts:
        if opt.name == 'images_type':
            return opt
    raise fc_exception.HookNotInstalled(
        detail='nova.conf.libvirt has no images_type option')


def allow_fastrbd_choice() -> None:
    """Add ``fastrbd`` to the choices of ``[libvirt] images_type``."""
    _images_type_opt().type.choices.setdefault(FASTRBD, CHOICE_HELP)


def apply_config(conf) -> None:
    """After parsing: register [fastclone], run Nova as rbd if fastrbd.

    Idempotent: called again (a second parse_args, a test harness), it
    sees its own override ('rbd') and keeps what was requested.
    """
    fc_conf.register_opts(conf)
    requested = conf.libvirt.images_type
    if _state['overridden'] is conf and requested == 'rbd':
        return   # our override reads 'rbd': fastrbd was requested
    _state['requested'] = requested
    if requested == FASTRBD:
        conf.set_override('images_type', 'rbd', group='libvirt')
        _state['overridden'] = conf


def _announce(conf) -> None:
    """Once per process, as the driver starts: say so, sweep the work dir."""
    if _state['announced']:
        return
    _state['announced'] = True
    from fastclone_backend.cache import workdir
    workdir.sweep_quietly(conf)   # files of populations that died with us
    LOG.info('fastclone-backend active: [libvirt] images_type %(req)s runs '
             'as rbd with FastRbd; clones into pool %(pool)s as %(user)s '
             '(conf %(conf)s); trusted Glance pools %(pools)s, image id '
             'match %(match)s, location API %(api)s',
             {'req': _state['requested'], 'pool': conf.libvirt.images_rbd_pool,
              'user': conf.libvirt.rbd_user,
              'conf': conf.libvirt.images_rbd_ceph_conf or '(librados)',
              'pools': ','.join(conf.fastclone.clone_allowed_pools),
              'match': conf.fastclone.clone_require_image_id_match,
              'api': conf.fastclone.use_location_api})


def _patched_backend_init(original):
    @functools.wraps(original)
    def __init__(self, use_cow):
        from fastclone_backend.spawn import fastrbd as fc_imagebackend
        import nova.conf
        conf = nova.conf.CONF
        original(self, use_cow)
        if conf.libvirt.images_type == FASTRBD:
            raise fc_exception.HookNotInstalled(
                detail="images_type still reads 'fastrbd' after parsing, so "
                       "Nova's rbd code paths would be skipped")
        self.BACKEND['rbd'] = fc_imagebackend.FastRbd
        self.BACKEND[FASTRBD] = fc_imagebackend.FastRbd
        if conf.libvirt.images_type == 'rbd':
            fc_conf.register_opts(conf)
            _announce(conf)
    __init__.fastclone_original = original
    return __init__


def _patched_manage_image_cache(original):
    @functools.wraps(original)
    def manage_image_cache(self, context, all_instances):
        import nova.conf
        original(self, context, all_instances)
        if nova.conf.CONF.libvirt.images_type == 'rbd':
            from fastclone_backend.cache import statsstore
            from fastclone_backend.cache import workdir
            from fastclone_backend import cluster
            from fastclone_backend.lifecycle import runner
            workdir.sweep_quietly(nova.conf.CONF)   # this host's files
            driver = cluster.rbd_driver()
            runner.periodic_pass(context, driver)
            statsstore.flush_quietly(driver)
    manage_image_cache.fastclone_original = original
    return manage_image_cache


def _patched_cache_image(original):
    @functools.wraps(original)
    def cache_image(self, context, image_id):
        import nova.conf
        if nova.conf.CONF.libvirt.images_type != 'rbd':
            return original(self, context, image_id)
        from fastclone_backend.spawn import precache
        warmed = precache.warm(context, image_id)
        if warmed is precache.STOCK:
            return original(self, context, image_id)
        return warmed
    cache_image.fastclone_original = original
    return cache_image


def _patched_parse_args(original):
    @functools.wraps(original)
    def parse_args(*args, **kwargs):
        import nova.conf
        result = original(*args, **kwargs)
        apply_config(nova.conf.CONF)
        return result
    parse_args.fastclone_original = original
    return parse_args


def installed() -> bool:
    return bool(_saved)


def check_release() -> None:
    """Refuse a Nova release outside the supported ones (releases.SERIES)."""
    refused = releases.refusal('fastclone-backend',
                               releases.installed_version(),
                               'the hook is not installed')
    if refused:
        raise fc_exception.NovaReleaseUnsupported(line=refused)


def install() -> None:
    """Make this process's Nova run fastrbd.  Idempotent.

    :raises: NovaReleaseUnsupported outside Nova 31 to 34.
    """
    if _saved:
        return
    check_release()
    from nova import config as nova_config
    from nova.virt.libvirt import driver
    from nova.virt.libvirt import imagebackend
    allow_fastrbd_choice()
    _saved['backend_init'] = imagebackend.Backend.__init__
    _saved['parse_args'] = nova_config.parse_args
    _saved['manage_image_cache'] = driver.LibvirtDriver.manage_image_cache
    _saved['cache_image'] = driver.LibvirtDriver.cache_image
    imagebackend.Backend.__init__ = _patched_backend_init(
        _saved['backend_init'])
    nova_config.parse_args = _patched_parse_args(_saved['parse_args'])
    driver.LibvirtDriver.manage_image_cache = _patched_manage_image_cache(
        _saved['manage_image_cache'])
    driver.LibvirtDriver.cache_image = _patched_cache_image(
        _saved['cache_image'])


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    if not _saved:
        return
    from nova import config as nova_config
    from nova.virt.libvirt import driver
    from nova.virt.libvirt import imagebackend
    imagebackend.Backend.__init__ = _saved.pop('backend_init')
    nova_config.parse_args = _saved.pop('parse_args')
    driver.LibvirtDriver.manage_image_cache = _saved.pop(
        'manage_image_cache')
    driver.LibvirtDriver.cache_image = _saved.pop('cache_image')
    _images_type_opt().type.choices.pop(FASTRBD, None)
    _state.update(requested=None, announced=False, overridden=None)


def list_nova_opts():
    """Nova's options, with ``fastrbd`` among the images_type choices.

    Entry point ``fastclone_backend.nova`` of ``oslo.config.opts``, for
    oslo-config-generator and tools that parse nova.conf with it.
    """
    from nova.conf import opts as nova_opts
    allow_fastrbd_choice()
    return nova_opts.list_opts()
