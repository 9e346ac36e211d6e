from __future__ import annotations

import pytest

from tests.support.procs import redis_server


@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server for the whole test session, on a free port."""
    with redis_server() as url:
        yield url
