"""schemathesis hooks for scripts/api-contract.sh.

An Idempotency-Key asks for the first answer given with it: schemathesis
draws keys from a small space of short strings, so most of its requests
would reuse one (and be answered 422 `idempotency_key_reused`, correctly)
instead of reaching the command. Just before a request is sent, a valid
key is replaced by a fresh UUID; an invalid one (a negative case) is sent
as drawn, so key validation is still tested.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[\x20-\x7E]{1,255}")


@schemathesis.hook
def before_call(context, case, kwargs):
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if isinstance(key, str) and VALID_KEY.fullmatch(key.strip(" \t")):
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
