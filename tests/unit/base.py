"""Base class for unit tests: Nova's NoDBTestCase, made safe for pytest."""

from nova import test


class PytestSafe:
    """Keep the test method through Nova's attribute cleanup.

    Nova's cleanup deletes public attributes, including the bound test
    method that pytest sets and later deletes itself.
    """

    def _clear_attrs(self):
        name = self._testMethodName
        method = self.__dict__.get(name)
        super()._clear_attrs()
        if method is not None:
            self.__dict__[name] = method


class TestCase(PytestSafe, test.NoDBTestCase):
    pass
