"""How many ways an account has to sign in: its password (unless it has none), its
provider identities and its passkeys. Unlinking or deleting the last one is refused."""

from __future__ import annotations

from socius.domain.errors import Conflict
from socius.domain.federation import unusable_password_hash
from socius.domain.users import User
from socius.services.ports import UnitOfWork

__all__ = ["has_password", "keep_one_way_in"]


def has_password(user: User) -> bool:
    return user.password_hash != unusable_password_hash()


async def keep_one_way_in(uow: UnitOfWork, user: User) -> None:
    """Inside the unit of work that removes one way in (before it does): 409
    ``last_sign_in_method`` when it is the account's only one."""
    ways = int(has_password(user))
    ways += await uow.identities.count(user.id) + await uow.passkeys.count(user.id)
    if ways <= 1:
        raise Conflict(
            "this is the account's last way to sign in: set a password (by a reset link), "
            "link a provider or add a passkey first",
            code="last_sign_in_method",
        )
