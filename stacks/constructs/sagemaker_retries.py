"""Which SageMaker errors a state retries, spelt as Step Functions names them, and for how long.

Step Functions names a service's error `SageMaker.<Error>`, never the bare code (`ThrottlingException`,
`ResourceLimitExceeded`), so a bare name matches nothing:
- the optimized integration (`arn:aws:states:::sagemaker:create*.sync`) raises the modelled errors with an
  `Exception` suffix (`SageMaker.ResourceLimitExceededException`, as the Step Functions developer guide's SageMaker
  examples retry it) and every other refusal (throttling, 5xx, but also validation and access errors) as
  `SageMaker.AmazonSageMakerException`;
- AWS SDK integrations (`arn:aws:states:::aws-sdk:sagemaker:*`) name errors `SageMaker.<ErrorName>Exception` (the
  developer guide's "AWS SDK service integrations" page), the unmodelled ones, throttling among them, as the SDK's
  service exception `SageMaker.SageMakerException`.
A retrier matches names only, never the cause, so the broad names get a budget a permanent refusal spends in seconds:
a bad request fails the run at once instead of after minutes of retries, and throttling still gets its retries.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_stepfunctions as sfn

# A job's instance quota is held by other jobs and frees when they end: worth waiting for (1 + 2 + 4 + 8 minutes).
JOB_QUOTA = "SageMaker.ResourceLimitExceededException"
JOB_REFUSED = "SageMaker.AmazonSageMakerException"
SDK_REFUSED = "SageMaker.SageMakerException"
# (error, first interval s, attempts, backoff): the broad names' whole budget stays under BROAD_BUDGET_S.
JOB_START_RETRIES = [(JOB_QUOTA, 60, 4, 2.0), (JOB_REFUSED, 5, 2, 2.0)]
SDK_READ_RETRIES = [(SDK_REFUSED, 2, 4, 2.0)]
BROAD_NAMES = (JOB_REFUSED, SDK_REFUSED)
BROAD_BUDGET_S = 60


def retry_job_start(state: sfn.CustomState | sfn.TaskStateBase) -> None:
    """A .sync Create*Job state: a full quota is waited out, any other refusal retried briefly."""
    _add(state, JOB_START_RETRIES)


def retry_sdk_read(state: sfn.CustomState | sfn.TaskStateBase) -> None:
    """An aws-sdk Describe* state: throttling retried with backoff; ResourceNotFound and the like fail at once."""
    _add(state, SDK_READ_RETRIES)


def total_wait_s(interval: float, attempts: int, backoff: float) -> float:
    return sum(interval * backoff ** n for n in range(attempts))


def _add(state, retries) -> None:
    for error, interval, attempts, backoff in retries:
        state.add_retry(errors=[error], interval=Duration.seconds(interval), max_attempts=attempts,
                        backoff_rate=backoff, jitter_strategy=sfn.JitterType.FULL)
