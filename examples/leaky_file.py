"""A file opened per invocation and never closed: an audit log handle kept per request."""

import os
import tempfile

AUDIT_LOG = os.path.join(tempfile.gettempdir(), "safehandler-audit.log")
OPEN_LOGS = []


def handler(event, context):
    log = open(AUDIT_LOG, "a", encoding="utf-8")
    log.write(f"{context.aws_request_id} {event.get('path', '/')}\n")
    log.flush()
    OPEN_LOGS.append(log)  # meant to be closed "later"; never is
    return {"statusCode": 200}
