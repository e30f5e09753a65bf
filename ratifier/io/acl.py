"""Create ACLs on the cluster through the admin API (CreateAcls, v1 and up on Kafka 4).

aiokafka's admin client has no ``create_acls`` method, but its protocol module has the
CreateAcls request: this sends it on the admin client's connection, so the call carries the
same TLS and SASL as every other client (``ratifier.io.kafka``). Creating an ACL that exists
already is not an error (the broker keeps one copy), so applying a plan twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.errors import for_code as error_for_code
from aiokafka.protocol.admin import CreateAclsRequest

from ratifier.core.acl import Acl
from ratifier.core.config import Settings
from ratifier.core.errors import StackError
from ratifier.io.admin import admin_client

# The wire codes of org.apache.kafka.common.acl / resource (KIP-140, KIP-290).
RESOURCE_TYPES = {"TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
PATTERN_TYPES = {"LITERAL": 3, "PREFIXED": 4}
OPERATIONS = {
    "ALL": 2,
    "READ": 3,
    "WRITE": 4,
    "CREATE": 5,
    "DELETE": 6,
    "ALTER": 7,
    "DESCRIBE": 8,
    "DESCRIBE_CONFIGS": 10,
    "IDEMPOTENT_WRITE": 12,
}
ALLOW = 3
ANY_HOST = "*"


async def apply_acls(settings: Settings, acls: Sequence[Acl]) -> int:
    """Create every ACL of ``acls`` as the settings' (admin) principal; returns how many.

    Raises StackError naming the first refused entry (e.g. the principal may not alter ACLs).
    """
    async with admin_client(settings) as admin:
        for acl in acls:
            request = CreateAclsRequest(
                RESOURCE_TYPES[acl.resource_type],
                acl.resource_name,
                PATTERN_TYPES[acl.pattern_type],
                acl.principal,
                ANY_HOST,
                OPERATIONS[acl.operation],
                ALLOW,
            )
            # The admin client's own send: one connection, its TLS and SASL, version negotiated.
            response = await admin._send_request(request)
            for code, message in response.creation_responses:
                if code:
                    name = error_for_code(code).__name__
                    raise StackError(f"could not create ACL [{acl}]: {name} {message or ''}")
    return len(acls)
