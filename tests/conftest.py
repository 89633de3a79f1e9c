"""Fixtures shared by every test folder live in tests/fixtures/; they are gathered here."""

from tests.fixtures.model import *  # noqa: F401,F403
from tests.fixtures.video import *  # noqa: F401,F403
