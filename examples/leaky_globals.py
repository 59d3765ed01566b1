"""The integration platform's failure in Python: a handler that changes what is not its own.

Every call appends to a module-level list, adds a logging handler, and replaces json.dumps:
each later invocation in the same environment runs with the damage.
"""

import json
import logging
import os
import tempfile

SEEN = []
LOG_FILE = os.path.join(tempfile.gettempdir(), "safehandler-app.log")


def _compact(obj, **kwargs):
    return json.JSONEncoder(separators=(",", ":")).encode(obj)


def handler(event, context):
    SEEN.append(event)
    logging.getLogger("app").addHandler(logging.FileHandler(LOG_FILE))
    json.dumps = _compact  # "just for this response"
    return {"statusCode": 200, "body": json.dumps({"seen": len(SEEN)})}
