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

"""fastclone-backend's own exceptions, each with a message template.

Where Nova expects one of its own (``ImageUnacceptable`` from a backend's
``clone``), the backend raises Nova's, with these messages as the reason.
Every other one reaches Nova's compute manager as it is: a failed build is
rescheduled, and the message, which names the image first, is what the
instance fault records (Nova keeps its first 255 characters).
"""


class FastcloneException(Exception):
    msg_fmt = 'An unknown fastclone-backend error occurred'

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        super().__init__(self.msg_fmt % kwargs)

    def format_message(self) -> str:
        """What Nova's instance fault shows (as for NovaException)."""
        return str(self)

    def without_image(self) -> str:
        """The message without its leading ``Image <id>``.

        For Nova's ImageUnacceptable, whose own message names the image
        first ("Image <id> is unacceptable: <reason>"): the image once.
        """
        text = str(self)
        image = self.kwargs.get('image')
        for prefix in ('Image %s rejected: ' % image, 'Image %s: ' % image):
            if image and text.startswith(prefix):
                return text[len(prefix):]
        return text


class LocationRejected(FastcloneException):
    msg_fmt = '%(url)s: %(reason)s'

    @property
    def reason(self) -> str:
        return self.kwargs['reason']


class HookNotInstalled(FastcloneException):
    msg_fmt = ("[libvirt] images_type = fastrbd needs nova-compute to run as "
               "nova-compute-fastrbd (fastclone_backend.hook.install() was "
               "not called): %(detail)s")


class NovaReleaseUnsupported(FastcloneException):
    msg_fmt = '%(line)s'


class ImageRejected(FastcloneException):
    msg_fmt = 'Image %(image)s rejected: %(reason)s'

    @property
    def reason(self) -> str:
        return self.kwargs['reason']


class CacheError(FastcloneException):
    msg_fmt = 'Image %(image)s: cached base image: %(reason)s'


class NotOurs(CacheError):
    """An image with our name that we did not make: never touched."""

    msg_fmt = ('Image %(image)s: cached base image: %(pool)s/%(name)s has '
               'our name but is not ours (no valid fastclone.owner mark, '
               'not in our ledger), so it is neither used nor replaced; '
               'rename or remove it if it is yours to drop')


class PopulationFailed(FastcloneException):
    """A step of the cache population failed, not for the image's fault.

    Nova reschedules the build elsewhere.
    """

    msg_fmt = ('Image %(image)s: cache population failed at %(stage)s'
               '%(progress)s: %(cause)s')

    def __init__(self, done=None, expected=None, **kwargs):
        progress = ('' if done is None else ' after %.0f of %.0f MiB'
                    % (done, expected or 0))
        super().__init__(done=done, expected=expected, progress=progress,
                         **kwargs)


class DownloadInterrupted(PopulationFailed):
    msg_fmt = ('Glance download of image %(image)s interrupted after '
               '%(done).0f of %(expected).0f MiB: %(cause)s')

    def __init__(self, **kwargs):
        super().__init__(stage='download', **kwargs)


class CephTimeout(FastcloneException):
    """Ceph did not answer within [fastclone] rados_op_timeout."""

    msg_fmt = ('Image %(image)s: Ceph did not answer within %(timeout)d s '
               '(%(option)s) while %(doing)s: %(cause)s')

    def __init__(self, option='[fastclone] rados_op_timeout', **kwargs):
        super().__init__(option=option, **kwargs)


class GlanceTimeout(FastcloneException):
    """Glance did not answer within [fastclone] glance_timeout."""

    msg_fmt = ('Image %(image)s: Glance did not answer within %(timeout)d s '
               '([fastclone] glance_timeout) while %(doing)s: %(cause)s')


class ToolTimeout(FastcloneException):
    """An external tool ran past its bound and was killed."""

    msg_fmt = ('Image %(image)s: %(tool)s did not finish within %(timeout)d '
               's (%(option)s) while %(doing)s: killed after %(done)d of '
               '%(total)d MiB')


class CacheUnavailable(FastcloneException):
    """The cache path cannot work here now, not for the image's fault.

    A reason of the host or the cluster: see
    :mod:`fastclone_backend.cache.degrade`.
    """

    msg_fmt = ('Image %(image)s: the converted-image cache cannot be used: '
               '%(reason)s; to fix: %(fix)s')

    @property
    def kind(self) -> str:
        return self.kwargs['kind']
