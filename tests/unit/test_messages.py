"""What an operator reads: each message names the image once."""

from nova import exception
import pytest

from fastclone_backend import exception as fc_exception

IMAGE = '6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f'


@pytest.mark.parametrize('error, reason', [
    (fc_exception.ImageRejected(image=IMAGE, reason='qcow2 declared raw'),
     'qcow2 declared raw'),
    (fc_exception.CacheError(image=IMAGE, reason='gave up'),
     'cached base image: gave up'),
    (fc_exception.CacheUnavailable(image=IMAGE, kind='pool-full',
                                   reason='quota', fix='raise it'),
     'the converted-image cache cannot be used: quota; to fix: raise it'),
    (fc_exception.NotOurs(image=IMAGE, pool='vms', name='fastclone-base-x'),
     'cached base image: vms/fastclone-base-x has our name but is not ours'),
])
def test_nova_refusal_names_the_image_once(error, reason):
    refused = exception.ImageUnacceptable(image_id=IMAGE,
                                          reason=error.without_image())
    assert str(refused).count(IMAGE) == 1
    assert str(refused).startswith('Image %s is unacceptable: %s'
                                   % (IMAGE, reason))


def test_a_message_not_starting_with_the_image_is_kept_whole():
    error = fc_exception.DownloadInterrupted(image=IMAGE, done=1, expected=2,
                                             cause='reset')
    assert error.without_image() == str(error)
