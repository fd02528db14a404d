"""Where asynchronous invocations' failures go: an encrypted queue that keeps them, and an alarm that pages.

EventBridge invokes its targets asynchronously: a failed drift check or a schedule that could not start
a run would otherwise vanish (Lambda drops an async event after its retries; EventBridge drops a target
it cannot reach). Every async target of a model stack sends its failures here.
"""

from __future__ import annotations

from aws_cdk import Duration, aws_cloudwatch as cloudwatch, aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms, aws_lambda as lambda_, aws_lambda_destinations as destinations, aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.nag import acknowledge


class AsyncFailures(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, topic: sns.ITopic, name: str) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(self, "Queue", queue_name=name, encryption=sqs.QueueEncryption.KMS,
                               encryption_master_key=key, enforce_ssl=True, retention_period=Duration.days(14))
        acknowledge(self.queue, {"AwsSolutions-SQS3": "This queue is itself the dead-letter destination of the "
                                                      "model's asynchronous invocations; nothing redrives out of it."})
        self.alarm = cloudwatch.Alarm(
            self, "Alarm", alarm_name=name, metric=self.queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            threshold=1, evaluation_periods=1, comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{name}: an asynchronous invocation failed; the message in the queue has the event and the error")
        self.alarm.add_alarm_action(cw_actions.SnsAction(topic))

    def keep_failures_of(self, function: lambda_.IFunction, retry_attempts: int = 2) -> None:
        """Lambda's own async retries, then the failed event (with its error) into the queue."""
        function.configure_async_invoke(on_failure=destinations.SqsDestination(self.queue), retry_attempts=retry_attempts,
                                        max_event_age=Duration.hours(6))
