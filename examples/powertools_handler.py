"""safehandler stacked with Powertools: findings go out through the same structured Logger."""

from aws_lambda_powertools import Logger

import safehandler

logger = Logger(service="orders")


@logger.inject_lambda_context
@safehandler.guard(logger=logger)
def handler(event, context):
    logger.info("order processed", extra={"path": event.get("rawPath")})
    return {"statusCode": 200}
