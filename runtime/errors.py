"""One error family for everything a show can get wrong.

Every message names where the problem is (a file, a key, an address) and what was
expected, so a performer can fix it without reading a traceback.
"""


class ShowError(Exception):
    """Base of every error the runtime raises on purpose."""


class ConfigError(ShowError):
    """A show or mapping file is malformed: a bad key, value or type."""


class MappingError(ConfigError):
    """A mapping entry is invalid: unknown source or target, bad transform."""


class GeneratorError(ShowError):
    """A generator cannot be built or cannot render: missing weights, bad checkpoint."""


class ShaderError(ShowError):
    """A shader file is missing or does not compile or link."""


class InputError(ShowError):
    """An input cannot be opened: a port in use, a device that is absent."""


class OutputError(ShowError):
    """An output cannot be opened: no display, no GL, an unwritable file."""


class DistributedError(ShowError):
    """A distributed render cannot start or continue: no Ray, a show it cannot
    split, a work folder from another render, workers that differ or are gone."""
