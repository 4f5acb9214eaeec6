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

cache_opts = [
    cfg.BoolOpt(
        'cache_enabled',
        default=True,
        help="""
Keep a cluster-wide cache of converted images in Ceph.

An image that cannot be cloned where Glance keeps it (qcow2 or another
non-raw format, an image in another store or cluster, an untrusted
location) is downloaded, checked and converted once, by one compute host,
into ``<cache_pool>/fastclone-base-<image id>@snap``; every instance disk on
every host is then a clone of it.

Possible values:

* True: use the cache (default).
* False: behave like stock Nova for such images: Nova downloads them into
  its local ``_base`` directory on each host and runs ``rbd import`` for a
  full copy per instance.  Images that can be cloned in place are still cloned,
  and images refused for what they contain are still refused (never
  downloaded).

Related options:

* ``[fastclone] cache_pool``, ``cache_max_bytes``, ``cache_max_count``
"""),
    cfg.StrOpt(
        'cache_pool',
        help="""
Ceph pool holding the cached base images.

The compute hosts' Ceph user needs read-write access to it; clones are made
from it into ``[libvirt] images_rbd_pool``.

Possible values:

* A pool name.
* Unset (default): ``[libvirt] images_rbd_pool``.

Related options:

* ``[fastclone] cache_enabled``
"""),
    cfg.IntOpt(
        'cache_lock_lease',
        default=10,
        min=5,
        help="""
Seconds a population lock (and the lifecycle pass's lock) lasts unless its
holder renews it.

The host that converts an image renews its lock every third of this
period.  If that host dies (kill -9, power loss), a spawn waiting on
another host finds its client dead (its liveness watch no longer answers
within ``cache_holder_timeout``), fences it and takes the population over
within seconds; failing that, once the lock ran out: two thirds of this
period to all of it after the death (Ceph may take a few seconds more).
The holder stops populating (and kills its ``qemu-img``) as soon as a
renewal is refused, or when none got through for this long (a cluster that
does not answer), so two hosts never publish a base at once.  Shorter:
faster takeover; a holder whose renewals the cluster delays for longer
loses its population and a waiting host starts it again.

Possible values:

* An integer of 5 or more.

Related options:

* ``[fastclone] cache_holder_timeout``, ``cache_wait_timeout``,
  ``cache_poll_interval``
* ``[fastclone] rados_op_timeout``
"""),
    cfg.FloatOpt(
        'cache_holder_timeout',
        default=2.0,
        min=0.5,
        help="""
Seconds a population lock's holder may leave a liveness check unanswered
before a waiting host declares it dead, fences it and takes the population
over.

While a host populates the cache with an image, its Ceph client keeps a
RADOS watch that answers for it in milliseconds.  A spawn waiting on
another host asks it (a RADOS notify) between its checks; when the OSD
reports that the holder did not answer within this many seconds (the host
was killed, lost power or its network), the waiting host blocklists the
holder's Ceph client (``osd blocklist add``, as librbd does before it breaks
a dead client's exclusive lock; the ``profile rbd`` monitor cap allows it),
breaks the lock, fences the dead population's ``qemu-img`` the same way,
removes its temporary image and populates the image itself: the next spawn
after a crash waits about this long plus ``cache_poll_interval``, not the
30 s Ceph takes to drop a dead client's watches.  A holder that was only
stalled this long (a stopped or swapping process) cannot publish after the
takeover: it is blocklisted, its population fails and is done by the host
that took over.  Only the holder's lock connection is fenced, never the
connection its clones use.  Without the monitor cap, the takeover still
happens but nothing is fenced, and the dead population's temporary image
is removed by the lifecycle pass (``fastclone-manage doctor`` warns).

Possible values:

* A number of seconds, 0.5 or more.  Shorter: faster takeover, and a
  stalled host fenced sooner.

Related options:

* ``[fastclone] cache_lock_lease``, ``cache_poll_interval``
"""),
    cfg.IntOpt(
        'cache_wait_timeout',
        default=1800,
        min=1,
        help="""
Seconds a spawn waits for another host that is populating the cache with
the same image, before giving up on the cache.

Possible values:

* An integer; long enough for the largest image to download and convert.

Related options:

* ``[fastclone] cache_lock_lease``, ``cache_poll_interval``
"""),
    cfg.FloatOpt(
        'cache_poll_interval',
        default=1.0,
        min=0.05,
        help="""
Seconds between checks while waiting for another host's population.

A waiting spawn is woken as soon as the population ends (the host that
populated notifies the lock's RADOS object, on which the waiters keep a
watch); this interval is the fallback should that notify be lost, and how
often a waiter checks that the populating host is still alive
(``cache_holder_timeout``).

Possible values:

* A positive number.

Related options:

* ``[fastclone] cache_wait_timeout``
"""),
    cfg.IntOpt(
        'cache_max_bytes',
        default=0,
        min=0,
        help="""
Provisioned bytes the cached base images may take before the least
recently used are evicted.

Enforced by the lifecycle pass (every ``[image_cache] manager_interval``)
when ``[image_cache] remove_unused_base_images`` is True.  A base that still
has clones is never evicted.

Possible values:

* 0: no limit (default).
* A positive number of bytes.

Related options:

* ``[fastclone] cache_max_count``
"""),
    cfg.IntOpt(
        'cache_max_count',
        default=0,
        min=0,
        help="""
Number of cached base images kept before the least recently used are
evicted.

Enforced by the lifecycle pass (every ``[image_cache] manager_interval``)
when ``[image_cache] remove_unused_base_images`` is True.  A base that still
has clones is never evicted.

Possible values:

* 0: no limit (default).
* A positive number.

Related options:

* ``[fastclone] cache_max_bytes``
"""),
    cfg.StrOpt(
        'work_dir',
        help="""
Local directory for image downloads while populating the cache.

It needs room for one image (and its raw form when
``convert_direct_to_rbd`` is False); every file is removed when the
population ends, successfully or not.

Possible values:

* A directory path.
* Unset (default): ``$instances_path/fastclone``.

Related options:

* ``[fastclone] convert_direct_to_rbd``
"""),
    cfg.BoolOpt(
        'convert_direct_to_rbd',
        default=True,
        help="""
Let ``qemu-img convert`` write straight into RBD.

Needs qemu-img's rbd block driver (Debian/Ubuntu package
``qemu-block-extra``).

Possible values:

* True: convert straight into the cache pool (default, fastest).
* False: convert to a local raw file, then ``rbd import`` it.

Related options:

* ``[fastclone] work_dir``
"""),
    cfg.IntOpt(
        'convert_address_space_mib',
        default=4096,
        min=1024,
        help="""
Address-space limit (MiB) for ``qemu-img convert`` and ``rbd import``.

The tools run under prlimit so a hostile image cannot exhaust the host.
librbd needs about 1.5 GiB of address space inside qemu-img. The tools
run with an 8 MiB stack limit, whatever nova-compute inherited, so what
they need does not depend on the host's ``ulimit -s``.

Possible values:

* An integer of 1024 or more.

Related options:

* ``[fastclone] convert_cpu_seconds``
"""),
    cfg.IntOpt(
        'convert_cpu_seconds',
        default=3600,
        min=1,
        help="""
CPU-time limit (seconds) for ``qemu-img convert`` and ``rbd import``.

Possible values:

* A positive integer.

Related options:

* ``[fastclone] convert_address_space_mib``
"""),
    cfg.FloatOpt(
        'progress_interval',
        default=10.0,
        min=0.1,
        help="""
Seconds between the INFO progress lines of a download, conversion or
import (a line is also logged every 10 %).

Possible values:

* A positive number.

Related options:

* None
"""),
]


lifecycle_opts = [
    cfg.BoolOpt(
        'flatten_retired_clones',
        default=False,
        help="""
Flatten the instance disks that still pin a retired cached base or a Glance
image deleted while it had clones, so that its data can be removed while
the instances live on.

The lifecycle pass (run from Nova's periodic image-cache pass) queues each
flatten in the Ceph manager (``rbd task add flatten``): it runs off the
compute host and survives nova-compute restarts.  Each flattened disk then
holds its own copy of the data it read from the parent: flattening 100
disks of a deleted 1 GiB image allocates up to 100 GiB, where keeping the
parent costs 1 GiB.  Needs the mgr caps ``mgr 'profile rbd
pool=<instances pool>'``; without them the pass logs once what to add and
goes on without flattening.

Possible values:

* False (default): keep a retired parent until its last clone is deleted.
* True: flatten its clones, then remove it.

Related options:

* ``[fastclone] flatten_max_in_flight``
* ``[image_cache] manager_interval``
"""),
    cfg.IntOpt(
        'flatten_clones_older_than',
        default=0,
        min=0,
        help="""
Flatten every clone in ``[libvirt] images_rbd_pool`` older than this many
hours, so long-lived instances stop depending on their image.

Costs the data each disk reads from its parent in Ceph space, and one open
per image of the pool in each lifecycle pass.

Possible values:

* 0 (default): never flatten for age.
* A number of hours.

Related options:

* ``[fastclone] flatten_max_in_flight``
"""),
    cfg.IntOpt(
        'clone_max_depth',
        default=5,
        min=0,
        help="""
Flatten any clone in ``[libvirt] images_rbd_pool`` whose chain of parents is
deeper than this (Cinder's ``rbd_max_clone_depth`` defaults to 5 too).

Reads from a deep chain go through every ancestor.  Nova flattens its own
clones of clones (direct snapshots into Glance, unshelve), and cached bases
are flat, so deep chains come from Glance images that are themselves
clones (volumes uploaded to images by Cinder, images cloned by hand); an
instance disk cloned from such an image adds one more level.

Possible values:

* 0: no limit (and no scan of the pool).
* A positive depth; 1 flattens every clone of a clone.

Related options:

* ``[fastclone] flatten_max_in_flight``
"""),
    cfg.IntOpt(
        'flatten_max_in_flight',
        default=4,
        min=1,
        help="""
Flatten tasks the lifecycle pass keeps queued or running in the Ceph
manager at once; the rest wait for the next pass.

Each flatten reads the parent's data and writes it into the clone: a cap
keeps that traffic bounded (Cinder's ``rbd_concurrent_flatten_operations``
plays the same role).

Possible values:

* A positive number.

Related options:

* ``[fastclone] flatten_retired_clones``, ``flatten_clones_older_than``,
  ``clone_max_depth``
"""),
]


ceph_opts = [
    cfg.IntOpt(
        'rados_op_timeout',
        default=0,
        min=0,
        help="""
Seconds any single Ceph operation of fastclone-backend may take before it
fails (``rados_osd_op_timeout`` and ``rados_mon_op_timeout`` of its cluster
connection, and of the ``qemu-img convert`` it runs).

Without a timeout, an OSD or monitor that stops answering (a hung disk, a
network partition, a stalled daemon) blocks the spawn, and the
nova-compute thread running it, until the cluster answers again, however
long that takes.  With one, such a spawn fails after about this long with
an error naming the image and the step (Nova then reschedules the build),
and the lifecycle pass gives up its turn.  The trade-off: an operation that
is merely slow (a cluster recovering, a large flatten competing for the
disks) fails too, where waiting would have succeeded; Ceph's own clients
(librbd in QEMU) wait for ever by default for that reason.  A value well
above the cluster's worst normal latency (30 s or more) fails only real
stalls.  Removals and the cleanup after a failed clone have their own
bound, ``remove_timeout``; ``rbd import`` has ``import_timeout``.

Possible values:

* 0 (default): wait for ever, as librados does by default.
* A number of seconds; 30 or more is advised.

Related options:

* ``[libvirt] rbd_connect_timeout`` (connecting only; fastclone-backend
  applies it as librados's ``client_mount_timeout``)
* ``[fastclone] cache_wait_timeout`` (waiting for another host's
  population)
* ``[fastclone] remove_timeout``, ``import_timeout``
"""),
    cfg.IntOpt(
        'remove_timeout',
        default=60,
        min=0,
        help="""
Seconds any single Ceph operation of a removal may take: removing a
failed population's image, a retired base, a trash entry, and what a
timed-out clone left behind.

Ceph pauses writes, removals included, to a pool that is full or over its
quota; without a bound such a removal blocks the spawn or the lifecycle
pass until space is freed.  With one, it fails after about this long with
an error naming the image and the step, and a later lifecycle pass tries
again.  Removals run on a second connection to the cluster with this
operation timeout.

Possible values:

* 0: wait for ever (or ``rados_op_timeout``, if set).
* A number of seconds (default 60).

Related options:

* ``[fastclone] rados_op_timeout``
"""),
    cfg.IntOpt(
        'import_timeout',
        default=3600,
        min=0,
        help="""
Seconds an ``rbd import`` of a converted image into the cache pool may run
before it is killed and its partial image removed.

``rbd import`` is used for raw images when ``convert_direct_to_rbd`` is
False or ``rados_op_timeout`` is 0; a cluster that stops answering would
otherwise hold the population (and every spawn waiting for it) for ever.
Set it well above the time the largest image takes to import.

Possible values:

* 0: no limit.
* A number of seconds (default 3600).

Related options:

* ``[fastclone] convert_direct_to_rbd``, ``rados_op_timeout``
* ``[fastclone] cache_wait_timeout`` (other hosts wait that long)
"""),
]

glance_opts = [
    cfg.IntOpt(
        'glance_timeout',
        default=60,
        min=0,
        help="""
Seconds fastclone-backend waits for Glance to connect, and then for each
read of its answer: the image record a spawn reads, the location API, the
download of an image into the cache, and the lifecycle pass's questions.

A Glance that accepts the connection and never answers would otherwise
hold a spawn (and the nova-compute thread running it) for ever.  With a
bound, the spawn fails with an error naming the image and the stage.  A
download may take longer than this in total: the bound is on each wait
for data, not on the whole transfer.

Possible values:

* 0: wait for ever (or Nova's ``[glance] timeout``, if set).
* A number of seconds (default 60).

Related options:

* ``[glance] timeout`` (Nova's own Glance calls), ``[glance] num_retries``
"""),
    cfg.IntOpt(
        'glance_ids_per_request',
        default=150,
        min=1,
        max=150,
        help="""
How many image ids the lifecycle pass puts in one request to Glance.

The pass asks Glance about the images of every cached base in pages: the
v2 image list filtered by id (``GET /v2/images?id=in:<id>,<id>,...``), one
request per page.  Each id adds 37 bytes to the request line: 150 ids make
a line of about 5.6 KB, under the 8 KB that Apache (``LimitRequestLine``)
and eventlet accept by default.  A front end that refuses long request
lines (uwsgi's default ``buffer-size`` is 4 KB; a refused page leaves its
bases undecided, with a WARNING, every pass) needs a smaller value, or a
larger buffer there.

Possible values:

* 1 to 150 (default 150).  10,000 bases cost about 10,000 / this value
  requests a pass.

Related options:

* ``[fastclone] glance_timeout`` (each request's bound)
* ``[image_cache] manager_interval`` (how often the pass runs)
"""),
]


ALL_OPTS = (clone_opts + cache_opts + lifecycle_opts + ceph_opts +
            glance_opts)


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(fastclone_group)
    conf.register_opts(ALL_OPTS,
                       group=fastclone_group)


def list_opts():
    """Options for oslo-config-generator (``oslo.config.opts`` entry point)."""
    return [(fastclone_group, ALL_OPTS)]
