"""The retraining state machine of one model, and what may start it (client, schedule, drift hook)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs, aws_sns as sns, aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn, aws_stepfunctions_tasks as tasks
from constructs import Construct

from pipelines import naming
from pipelines.spec import ModelSpec

# The lambda:invoke integration's own transient errors (Step Functions developer guide, "Handling transient Lambda
# service exceptions"). A function's error reaches the state as its exception's type, so AWS throttling inside a
# handler arrives as botocore's ClientError, after boto3's own retries: no bare AWS error code would match it.
TRANSIENT_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                    "Lambda.TooManyRequestsException", "Lambda.ClientExecutionTimeoutException"]
TASK_PAYLOAD = {"execution_arn": sfn.JsonPath.execution_id, "execution_name": sfn.JsonPath.execution_name,
                "state": sfn.JsonPath.entire_payload}


def state_machine_arn(scope: Construct, model: str, env_name: str) -> str:
    """Known before the machine exists, so its own functions can be told its ARN without a cycle."""
    return Stack.of(scope).format_arn(service="states", resource="stateMachine",
                                      resource_name=naming.state_machine(model, env_name),
                                      arn_format=ArnFormat.COLON_RESOURCE_NAME)


def lambda_step(scope: Construct, name: str, function, result_path: str | None, **payload) -> tasks.LambdaInvoke:
    step = tasks.LambdaInvoke(scope, name, lambda_function=function,
                              payload=sfn.TaskInput.from_object({**TASK_PAYLOAD, **payload}),
                              payload_response_only=True, result_path=result_path or sfn.JsonPath.DISCARD,
                              retry_on_service_exceptions=False)
    step.add_retry(errors=TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2,
                   jitter_strategy=sfn.JitterType.FULL)
    return step


class RetrainingStateMachine(Construct):
    """prepare -> validate data -> train (.sync) -> evaluate -> champion? -> register -> approval -> deploy -> notify."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, env_name: str, key: kms.IKey,
                 functions: dict, training, approval_step: sfn.IChainable, deployment=None,
                 head: sfn.TaskStateBase | None = None) -> None:
        """head: in a promotion stage (docs/promotion.md), the step that imports the approved package from the previous
        stage replaces prepare..register; approval, deployment and notifications are the same."""
        super().__init__(scope, construct_id)
        notify = functions["notify"]

        def notify_step(name: str, outcome: str) -> tasks.LambdaInvoke:
            return lambda_step(self, name, notify, None, outcome=outcome)

        # Every catch routed here records the step's own error at $.error: the execution ends with it, so the
        # console, DescribeExecution and `mlops run status` show what failed rather than a fixed text.
        failed = notify_step("NotifyFailure", "failed").next(sfn.Fail(self, "RunFailed", error_path="$.error.Error",
                                                                     cause_path="$.error.Cause"))
        refused = sfn.Fail(self, "RunRefused", error="RunAlreadyInProgress",
                           cause="another retraining run of this model is in progress")

        succeeded = notify_step("NotifySucceeded", "succeeded").next(sfn.Succeed(self, "Done"))
        after_approval = deployment.chain(on_failure=failed, then=succeeded) if deployment is not None else succeeded
        approval_step.add_catch(failed, errors=["States.ALL"], result_path="$.error")  # after Timeout/ModelRejected
        approval = sfn.Chain.start(approval_step).next(after_approval)
        if head is not None:
            head.add_catch(failed, errors=["States.ALL"], result_path="$.error")
            definition = sfn.Chain.start(head).next(approval)
        else:
            definition = self._training(functions, training, refused, failed, approval, notify_step)
        log_group = logs.LogGroup(self, "Logs", encryption_key=key, retention=logs.RetentionDays.ONE_YEAR,
                                  removal_policy=RemovalPolicy.RETAIN)
        self.machine = sfn.StateMachine(
            self, "StateMachine", state_machine_name=naming.state_machine(spec.name, env_name),
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.seconds(training_seconds(spec) + int(spec.approval.timeout_hours * 3600) + 6 * 3600),
            tracing_enabled=True, encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(key),
            # Without execution data: payloads carry the approval task token, which only the approval hook may see.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        if head is None:
            training.grant_start(self.machine)
        if deployment is not None:
            deployment.grant_to_state_machine(self.machine)

    def _training(self, functions: dict, training, refused, failed, approval, notify_step) -> sfn.IChainable:
        prepare = lambda_step(self, "PrepareRun", functions["prepare"], "$.run")
        prepare.add_catch(refused, errors=["RunAlreadyInProgress"], result_path="$.error")
        validate = lambda_step(self, "ValidateData", functions["validate"], "$.validation")
        evaluate = lambda_step(self, "EvaluateAgainstChampion", functions["evaluate"], "$.evaluation")
        register = lambda_step(self, "RegisterModelPackage", functions["register"], "$.registration")
        for step in (prepare, validate, *training.steps, evaluate, register):
            step.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        not_promoted = notify_step("NotifyNotPromoted", "not promoted").next(sfn.Succeed(self, "KeptChampion"))
        # A reproduction (`mlops run reproduce`) verifies a version: its verdict is $.evaluation.reproduction in the
        # run's output; it registers nothing, emails nobody and leaves no approval pending.
        reproduced = sfn.Succeed(self, "ReproductionChecked",
                                 comment="The verdict is $.evaluation.reproduction; nothing registered or approved")
        return (sfn.Chain.start(prepare).next(training.snapshot_state).next(validate)
                .next(self._train_or_tune(training)).next(evaluate)
                .next(sfn.Choice(self, "ChallengerWins?")
                      .when(sfn.Condition.is_present("$.run.reproduces"), reproduced)
                      .when(sfn.Condition.boolean_equals("$.evaluation.promote", True), register.next(approval))
                      .otherwise(not_promoted)))


    def _train_or_tune(self, training) -> sfn.IChainable:
        """One training job, or (spec with tuning:, and a run that tunes) the tuning job and its best trial described:
        either way $.training has the same fields for evaluation and registration."""
        if training.tune_state is None:
            return training.state
        tuned = sfn.Chain.start(training.tune_state).next(training.best_trial_state)
        return (sfn.Choice(self, "Tune?")
                .when(sfn.Condition.boolean_equals("$.run.tune", True), tuned)
                .otherwise(training.state)
                .afterwards())


def training_seconds(spec: ModelSpec) -> int:
    """The longest training can take: one job, or the tuning job's waves of parallel trials (or its own limit)."""
    one_job = spec.training.max_runtime_s + (spec.training.effective_max_wait_s or 0)
    if spec.tuning is None:
        return one_job
    waves = one_job * spec.tuning.rounds()
    return min(waves, spec.tuning.max_runtime_s) if spec.tuning.max_runtime_s else waves


class RetrainingTriggers(Construct):
    """The spec's schedule (EventBridge Scheduler, stacks/constructs/schedules.py); the client and the drift hook
    start executions directly."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, machine: sfn.IStateMachine,
                 schedules) -> None:
        super().__init__(scope, construct_id)
        self.schedule = None
        if spec.retraining.schedule:
            self.schedule = schedules.add("retraining", spec.retraining.schedule, target_arn=machine.state_machine_arn,
                                          payload={"model": spec.name, "trigger": "schedule", "requested_by": "schedule"},
                                          description=f"Periodic retraining of {spec.name}")


class NotificationTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, emails: list[str], name: str) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", topic_name=name, master_key=key, enforce_ssl=True)
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
