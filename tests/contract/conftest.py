"""Contract tests: each file replays one real client of Memo-2023/mana-monorepo (named in its docstring) —
its calls in its order, with its headers and bodies — and asserts exactly the fields that client reads.
They are the definition of "drop-in"."""

from tests.payments.conftest import checkout, make_package, stripe_stub  # noqa: F401  (fixtures)
