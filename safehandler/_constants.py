"""Names of the ``SAFEHANDLER_*`` environment variables and the Lambda variables we read.

One place for every name, so the README's settings table and the code cannot drift apart.
"""

from __future__ import annotations

VERSION = "0.1.0"  # safehandler.__version__; here so that the layer's entry need not import it

# safehandler's own settings (see config.Policy)
MODE = "SAFEHANDLER_MODE"
LEAK_AFTER = "SAFEHANDLER_LEAK_AFTER"
LEAK_SPAN = "SAFEHANDLER_LEAK_SPAN"
WARMUP = "SAFEHANDLER_WARMUP"
THREAD_GRACE_MS = "SAFEHANDLER_THREAD_GRACE_MS"
FD_THRESHOLD = "SAFEHANDLER_FD_THRESHOLD"
MEMORY_THRESHOLD = "SAFEHANDLER_MEMORY_THRESHOLD"
MEMORY_LIMIT_MB = "SAFEHANDLER_MEMORY_LIMIT_MB"
MEMORY_WINDOW = "SAFEHANDLER_MEMORY_WINDOW"
MEMORY_LEAK_KB = "SAFEHANDLER_MEMORY_LEAK_KB"
DB_CLEANUP = "SAFEHANDLER_DB_CLEANUP"
PROBES = "SAFEHANDLER_PROBES"
RECYCLE = "SAFEHANDLER_RECYCLE"
ISOLATION = "SAFEHANDLER_ISOLATION"
SHARED_STATE_EVERY = "SAFEHANDLER_SHARED_STATE_EVERY"
ALLOW_GLOBALS = "SAFEHANDLER_ALLOW_GLOBALS"
ALLOW_THREADS = "SAFEHANDLER_ALLOW_THREADS"
METRICS = "SAFEHANDLER_METRICS"
METRICS_NAMESPACE = "SAFEHANDLER_METRICS_NAMESPACE"
REDACT = "SAFEHANDLER_REDACT"

# the layer: what the exec wrapper sets, and where the guard keeps its health
ORIGINAL_HANDLER = "SAFEHANDLER_ORIGINAL_HANDLER"
SUPERVISED = "SAFEHANDLER_SUPERVISED"
HEALTH_FILE = "SAFEHANDLER_HEALTH_FILE"  # "off": write none
RESTARTS = "SAFEHANDLER_RESTARTS"  # set by the exec wrapper: how often it restarted the runtime
# set by the exec wrapper: the file a recycling runtime creates to be restarted (the channel
# is the file, in the wrapper's private directory, never an exit status a handler can give)
RECYCLE_MARKER = "SAFEHANDLER_RECYCLE_MARKER"
TEST_MYSQL_URL = "SAFEHANDLER_TEST_MYSQL_URL"  # the test suite's server
NOT_POLICY = (
    ORIGINAL_HANDLER,
    SUPERVISED,
    HEALTH_FILE,
    RESTARTS,
    RECYCLE_MARKER,
    TEST_MYSQL_URL,
)  # read where used
PREFIX = "SAFEHANDLER_"

# set by the Lambda runtime environment
LAMBDA_MEMORY_SIZE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
LAMBDA_MAX_CONCURRENCY = "AWS_LAMBDA_MAX_CONCURRENCY"
LAMBDA_RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"
LAMBDA_LOG_FORMAT = "AWS_LAMBDA_LOG_FORMAT"  # "JSON": the runtime's formatter writes JSON lines
LAMBDA_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
# Powertools' own, honoured when set
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"

LOGGER_NAME = "safehandler"
