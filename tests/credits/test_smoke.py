from tests.support import Api


async def test_balance_of_new_user_is_zero(api: Api) -> None:
    user = api.actor()
    assert await api.balance(user) == {"balance": 0, "totalEarned": 0, "totalSpent": 0, "reserved": 0}
