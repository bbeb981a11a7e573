"""The parts of ``AbstractEventLoop`` pyloop does not implement yet.

Each raises NotImplementedError naming the method, so code that needs them
fails loudly instead of half-working.  Subprocesses and signals arrive with
the process milestone.
"""


def _not_yet(name, milestone):
    def method(self, *args, **kwargs):
        raise NotImplementedError(
            f'pyloop.Loop.{name}() is not implemented yet ({milestone}); '
            f'use asyncio\'s default loop for code that needs it')
    method.__name__ = name
    method.__doc__ = f'Not implemented yet ({milestone}): raises NotImplementedError.'
    return method


def _not_yet_async(name, milestone):
    sync = _not_yet(name, milestone)

    async def method(self, *args, **kwargs):
        sync(self)
    method.__name__ = name
    method.__doc__ = sync.__doc__
    return method


_PROCESSES = 'subprocesses and signals'


class UnsupportedMixin:
    """Placeholders raising NotImplementedError for unimplemented APIs."""

    subprocess_exec = _not_yet_async('subprocess_exec', _PROCESSES)
    subprocess_shell = _not_yet_async('subprocess_shell', _PROCESSES)
    add_signal_handler = _not_yet('add_signal_handler', _PROCESSES)
    remove_signal_handler = _not_yet('remove_signal_handler', _PROCESSES)
