"""A cache refresher thread started per invocation: frozen with the environment, it resumes
at random inside later invocations. Daemon threads are not exempt."""

import threading
import time

CACHE = {}
STOP = threading.Event()


def _refresh_forever():
    while not STOP.wait(0.05):
        CACHE["refreshed_at"] = time.time()


def handler(event, context):
    threading.Thread(target=_refresh_forever, name="cache-refresher", daemon=True).start()
    return {"statusCode": 200, "body": str(CACHE.get("refreshed_at"))}
