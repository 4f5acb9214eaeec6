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

"""The ``[fastclone]`` options.  Nothing is registered at import time."""

from oslo_config import cfg

GROUP = 'fastclone'

fastclone_group = cfg.OptGroup(
    GROUP,
    title='fastclone-backend options',
    help="""
Options of the ``fastrbd`` Nova libvirt image backend (fastclone-backend),
which makes instance root disks Ceph RBD copy-on-write clones of Glance
images.  Enable it with ``[libvirt] images_type = fastrbd`` and run
nova-compute as ``nova-compute-fastrbd``.  The ``[libvirt] images_rbd_*``
and ``rbd_*`` options keep their meaning.
""")

clone_opts = [
    cfg.ListOpt(
        'clone_allowed_pools',
        default=['images'],
        item_type=cfg.types.String(),
        help="""
Ceph pools that a Glance RBD location may point into for instance disks to
be cloned from it.

A Glance location ``rbd://<fsid>/<pool>/<image>/<snapshot>`` is cloned only
when its pool is in this list (and its fsid is the local cluster's, its image
name is the Glance image id, its snapshot exists and the image is raw).
Anything else is refused, with the reason logged per location.

Possible values:

* A list of pool names, normally the pool of Glance's rbd store
  (glance_store ``rbd_store_pool``).

Related options:

* ``[fastclone] clone_require_image_id_match``
* ``[libvirt] images_rbd_pool`` (where the clones are made)
"""),
    cfg.BoolOpt(
        'clone_require_image_id_match',
        default=True,
        help="""
Require the RBD image name of a Glance location to equal the Glance image id.

Glance's rbd store always names the RBD image after the image id.  A
location whose name differs was added by hand through the location API and
may point at any image in an allowed pool, including another tenant's.

Possible values:

* True: refuse such locations (default).
* False: accept them; only for clouds whose Glance locations are written
  solely by trusted operators.

Related options:

* ``[fastclone] clone_allowed_pools``
"""),
    cfg.BoolOpt(
        'use_location_api',
        default=True,
        help="""
Ask Glance's location API (image API v2.17, ``GET
/v2/images/{id}/locations``) for an image's locations when the image record
itself offers no location that can be cloned.

Glance allows this call to service users (policy ``fetch_image_location``),
so it still finds the RBD location when ``show_multiple_locations`` and
``show_image_direct_url`` are off.  When Glance refuses it or is too old,
the call is skipped.

Possible values:

* True: use it as a fallback (default).
* False: never call it.

Related options:

* ``[service_user] send_service_user_token``
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(fastclone_group)
    conf.register_opts(clone_opts, group=fastclone_group)


def list_opts():
    """Options for oslo-config-generator (``oslo.config.opts`` entry point)."""
    return [(fastclone_group, clone_opts)]
