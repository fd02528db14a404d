"""The local emulation runs every function in one process and swaps os.environ per call (under ENV_LOCK); other
threads (moto's Step Functions, botocore resolving credentials) copy the environment without that lock."""

import os

import pytest

from pipelines.local.glue import _WholeCopiesEnviron


class VanishingTable(dict):
    """An environment table from which a handler's variable is removed just after its keys were listed: what another
    thread's swap does between os._Environ listing the keys and reading each one."""

    def __iter__(self):
        keys = list(super().__iter__())
        self.pop(b"MLOPS_ENVIRONMENT", None)
        return iter(keys)


def environ(kind):
    encode = lambda text: text.encode()  # noqa: E731
    decode = lambda data: data.decode()  # noqa: E731
    return kind(VanishingTable({b"HOME": b"/root", b"MLOPS_ENVIRONMENT": b"local"}), encode, decode, encode, decode)


def test_a_plain_environ_copied_while_a_variable_goes_raises_key_error():
    with pytest.raises(KeyError, match="MLOPS_ENVIRONMENT"):
        environ(os._Environ).copy()


@pytest.mark.parametrize("read", [lambda env: env.copy(), lambda env: dict(env.items())])
def test_the_emulations_environ_copies_one_whole_snapshot(read):
    assert read(environ(_WholeCopiesEnviron)) in ({"HOME": "/root", "MLOPS_ENVIRONMENT": "local"}, {"HOME": "/root"})


def test_the_emulation_installs_it_on_os_environ_keeping_every_variable():
    from pipelines.local.glue import LambdaDispatch

    before = dict(os.environ)
    LambdaDispatch()
    assert isinstance(os.environ, _WholeCopiesEnviron) and os.environ.copy() == before
