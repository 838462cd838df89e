"""The README's table of test users, written from each provider sandbox's own `TEST_USERS`.

The shared users of `sandbox/users.py` come first, one row each with every provider's words; a
provider's own test users follow, with a dash where another provider has no such user.
"""

from __future__ import annotations

from linkflow.models import Provider
from sandbox.arcadia import ArcadiaSandbox
from sandbox.mx import MxSandbox
from sandbox.skeleton import ProviderSandbox
from sandbox.synapse import SynapseSandbox
from sandbox.teal import TealSandbox
from sandbox.unbill import UnbillSandbox
from sandbox.users import Scenario

SANDBOX_CLASSES: dict[Provider, type[ProviderSandbox]] = {
    Provider.MX: MxSandbox,
    Provider.SYNAPSE: SynapseSandbox,
    Provider.ARCADIA: ArcadiaSandbox,
    Provider.TEAL: TealSandbox,
    Provider.UNBILL: UnbillSandbox,
}
PROVIDER_NAMES = {
    Provider.MX: "MX",
    Provider.SYNAPSE: "Synapse",
    Provider.ARCADIA: "Arcadia",
    Provider.TEAL: "Teal",
    Provider.UNBILL: "Unbill",
}


def users_table() -> str:
    shared = [scenario.value for scenario in Scenario]
    own = [
        user
        for sandbox in SANDBOX_CLASSES.values()
        for user in sandbox.TEST_USERS
        if user not in shared
    ]
    header = "| username | " + " | ".join(PROVIDER_NAMES[p] for p in SANDBOX_CLASSES) + " |"
    rows = [header, "|---" * (len(SANDBOX_CLASSES) + 1) + "|"]
    for user in [*shared, *own]:
        cells = [sandbox.TEST_USERS.get(user, "-") for sandbox in SANDBOX_CLASSES.values()]
        rows.append(f"| `{user}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)
