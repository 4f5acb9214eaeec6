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
"""


class FastcloneException(Exception):
    msg_fmt = 'An unknown fastclone-backend error occurred'

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        super().__init__(self.msg_fmt % kwargs)


class LocationRejected(FastcloneException):
    msg_fmt = '%(url)s: %(reason)s'

    @property
    def reason(self) -> str:
        return self.kwargs['reason']


class HookNotInstalled(FastcloneException):
    msg_fmt = ("[libvirt] images_type = fastrbd needs nova-compute to run as "
               "nova-compute-fastrbd (fastclone_backend.hook.install() was "
               "not called): %(detail)s")


class ImageRejected(FastcloneException):
    msg_fmt = 'Image %(image)s rejected: %(reason)s'

    @property
    def reason(self) -> str:
        return self.kwargs['reason']


class CacheError(FastcloneException):
    msg_fmt = 'Image %(image)s: cached base image: %(reason)s'


class DownloadInterrupted(FastcloneException):
    """Not the image's fault: Nova reschedules the build elsewhere."""

    msg_fmt = ('Glance download of image %(image)s interrupted after '
               '%(done).0f of %(expected).0f MiB: %(cause)s')
