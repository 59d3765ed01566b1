"""CDK (Python): the same as template.yaml, for a stack of your own.

    pip install aws-cdk-lib constructs
    cdk deploy -c safehandler_layer_arn=arn:aws:lambda:...:layer:safehandler:1

The queries are the README's ("Fleet view"); tests/test_fleet_docs.py keeps them in step.
"""

from __future__ import annotations

from aws_cdk import App, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

TOP_LEAKING_SITES = r"""filter @message like /safehandler\.leak/
| parse @message /\\?"kind\\?": \\?"(?<kind>[^"\\]+)/
| parse @message /\\?"site\\?": \\?"(?<site>[^"\\]+)/
| parse @message /\\?"count\\?": (?<held>\d+)/
| filter ispresent(site)
| stats count_distinct(@logStream) as envs, count(*) as reports, max(held) as most by site, kind
| sort envs desc, most desc
| limit 20
"""

FIRST_FINDING_BY_ENVIRONMENT = r"""filter @message like /safehandler\.leak/
| parse @message /\\?"invocation\\?": (?<at>\d+)/
| stats min(at) as first_at, min(@timestamp) as first_seen, count(*) as findings by @logStream
| sort first_at asc
| limit 100
"""

RECYCLES_PER_HOUR = r"""filter @message like /safehandler: recycling the environment/
| stats count(*) as recycles, count_distinct(@logStream) as environments by bin(1h)
"""


class GuardedFunction(Stack):
    def __init__(self, scope: Construct, name: str, *, layer_arn: str) -> None:
        super().__init__(scope, name)
        function = lambda_.Function(
            self,
            "Orders",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler="app.handler",
            code=lambda_.Code.from_asset("src"),
            memory_size=512,
            layers=[lambda_.LayerVersion.from_layer_version_arn(self, "Safehandler", layer_arn)],
            environment={
                "AWS_LAMBDA_EXEC_WRAPPER": "/opt/safehandler",
                "SAFEHANDLER_METRICS": "emf",
                "SAFEHANDLER_METRICS_NAMESPACE": "safehandler",
            },
        )
        fd_share = cloudwatch.Metric(
            namespace="safehandler",
            metric_name="FdShare",
            dimensions_map={"function_name": function.function_name},
            statistic="Maximum",
            period=Duration.minutes(1),
        )
        # past 40% of RLIMIT_NOFILE for 3 minutes in a row (each environment recycles at 50%)
        fd_share.create_alarm(
            self,
            "FdShareAlarm",
            alarm_description="safehandler - an execution environment holds over 40% of its fds",
            threshold=40,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        log_group = logs.LogGroup.from_log_group_name(
            self, "Logs", f"/aws/lambda/{function.function_name}"
        )
        for query_name, query in (
            ("top-leaking-sites", TOP_LEAKING_SITES),
            ("environments-by-first-finding", FIRST_FINDING_BY_ENVIRONMENT),
            ("recycles-per-hour", RECYCLES_PER_HOUR),
        ):
            logs.CfnQueryDefinition(
                self,
                query_name,
                name=f"safehandler/{query_name}",
                query_string=query,
                log_group_names=[log_group.log_group_name],
            )


if __name__ == "__main__":
    app = App()
    GuardedFunction(app, "Orders", layer_arn=app.node.try_get_context("safehandler_layer_arn"))
    app.synth()
