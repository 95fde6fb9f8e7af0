"""Personal and internal credit endpoints: balance, use, history, refunds, grants, init, holds."""
