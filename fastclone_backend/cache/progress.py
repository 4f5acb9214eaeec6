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

"""Progress of a long transfer: an INFO line every 10 s or 10 %."""

import time

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

MiB = 1 << 20


class Progress:
    """Logs ``image X: <step> N/M MiB (P %) at R MiB/s``, sparingly.

    ``update(done)`` may be called as often as wanted: a line is logged
    when 10 % more is done or ``interval`` seconds passed since the last
    line, and once at ``finish()``.
    """

    def __init__(self, image_id: str, step: str, total: int,
                 interval: float = 10.0, clock=time.monotonic):
        self.image_id = image_id
        self.step = step
        self.total = total
        self.interval = interval
        self.clock = clock
        self.start = self.last_time = clock()
        self.last_tenth = 0
        self.done = 0

    def _log(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-6)
        pct = 100.0 * self.done / self.total if self.total else 0.0
        LOG.info('image %(image)s: %(step)s %(done).1f/%(total).1f MiB '
                 '(%(pct).0f %%) at %(rate).1f MiB/s',
                 {'image': self.image_id, 'step': self.step,
                  'done': self.done / MiB, 'total': self.total / MiB,
                  'pct': pct, 'rate': self.done / MiB / elapsed})
        self.last_time = now

    def update(self, done: int) -> None:
        self.done = done
        now = self.clock()
        tenth = int(10 * done / self.total) if self.total else 0
        if tenth > self.last_tenth or now - self.last_time >= self.interval:
            self.last_tenth = max(tenth, self.last_tenth)
            self._log(now)

    def finish(self) -> float:
        """Log the final line; returns the seconds taken."""
        now = self.clock()
        if self.last_tenth < 10 or self.last_time != now:
            self._log(now)
        return now - self.start
