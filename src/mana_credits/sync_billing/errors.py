"""Cloud Sync errors, rendered by the one handler of kit.errors."""

from __future__ import annotations

from mana_credits.kit.errors import Conflict


class SyncAlreadyActive(Conflict):
    code = "sync_already_active"
    message = "Cloud Sync is already active"


class SyncNotActive(Conflict):
    code = "sync_not_active"
    message = "Cloud Sync is not active"


class SyncGifted(Conflict):
    code = "sync_gifted"
    message = "Cloud Sync is gifted to this user; there is nothing to pay or cancel"


class SyncNotGifted(Conflict):
    code = "sync_not_gifted"
    message = "Cloud Sync is not gifted to this user"
