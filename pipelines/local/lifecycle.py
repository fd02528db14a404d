"""`mlops local up`: one whole retraining lifecycle on this machine, no AWS account, no Docker.

The CDK app is synthesized for a `local` environment and provisioned into moto; moto's Step
Functions interpreter runs the synthesized definition; Lambda tasks run the real handlers
in-process; the training task runs train.py as a subprocess; the approval link is served on
127.0.0.1; the approved model is served by inference.py on 127.0.0.1; shifted traffic is captured;
the drift hook finds it and starts the second run. Models named `alongside` run their own whole lifecycle at the
same time, on the same emulated environment and its one control plane (each in a lane of its own).

IAM is enforced (unless enforce_iam=False): each handler runs with its own synthesized role's session,
train.py with the training role's; the driver itself (seeding data, starting runs, the approver's
mailbox) signs as an admin user. docs/local-emulation-iam.md says what moto checks.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock, Thread
from typing import Callable, Sequence

import boto3
from botocore.exceptions import ClientError

from pipelines import naming
from pipelines.spec import REPO_ROOT, find_model_dir, load_spec, models_dir as configured_models_dir

LOCAL_ENV = "local"
DEMO_REQUESTER = "data-scientist@example.com"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
SCENARIOS = ("drift", "quality")
_CLIENTS = Lock()
_SPLITTING = Lock()


class LifecycleError(RuntimeError):
    pass


@dataclass
class LifecycleResult:
    runs: list[dict] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    approvals: list[dict] = field(default_factory=list)
    predictions: list[dict] = field(default_factory=list)
    served_by: str | None = None  # the model its answer names (hosting: shared)
    drift: dict = field(default_factory=dict)
    drift_report: str = ""
    quality: list[dict] = field(default_factory=list)  # scenario "quality": each check's result, in order
    labels: list[dict] = field(default_factory=list)  # scenario "quality": each labels upload (location, counts)
    quality_report: str = ""
    second_run: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    captured_rows: int = 0
    metric_columns: list[str] = field(default_factory=list)  # the model's metric columns, objective first
    alongside: dict[str, "LifecycleResult"] = field(default_factory=dict)  # model -> its lifecycle, run at the same time


def local_environment(account: str, region: str) -> dict:
    # The local MLflow store plays the environment's tracking server (free here; off by default on AWS, it bills hourly).
    return {LOCAL_ENV: {"account": account, "region": region, "experiments": {"enabled": True}, "overrides": {}}}


def use_project_node(environ=os.environ) -> None:
    """jsii (the CDK, started by the first `import aws_cdk`) on the project's Node 22 in .tools/ when it is there, as
    the Makefile runs it, not the machine's end-of-life Node; and without jsii's banner about an old Node either way:
    `mlops local up` from an activated venv printed a dozen lines of it before the lifecycle's first step."""
    environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    project_node = REPO_ROOT / ".tools" / "node_modules" / ".bin"
    if project_node.is_dir() and str(project_node) not in environ.get("PATH", "").split(os.pathsep):
        environ["PATH"] = f"{project_node}{os.pathsep}{environ.get('PATH', '')}"


def synthesize(model: str, account: str, region: str, models_dir: Path | None = None,
               alongside: Sequence[str] = ()) -> dict[str, dict]:
    """The registry, control plane and model stacks (model's, and alongside's) of the `local` environment, as the
    CDK app synthesizes them from the model folders under models_dir."""
    use_project_node()
    import aws_cdk as cdk

    from stacks.app_builder import build_app

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context.update({"mlops:environments": local_environment(account, region), "env": LOCAL_ENV,
                    "aws:cdk:bundling-stacks": []})
    context.pop("mlops:delivery", None)  # one emulated environment: no cross-account delivery to name
    assembly = build_app(cdk.App(context=context, outdir=str(Path(os.environ.get("MLOPS_LOCAL_DIR", ".local")) / "cdk.out")),
                         models_dir or configured_models_dir()).synth()
    return {name: assembly.get_stack_by_name(name).template
            for name in (naming.registry_stack(LOCAL_ENV), naming.control_stack(LOCAL_ENV),
                         *(naming.model_stack(m, LOCAL_ENV) for m in (model, *alongside)))}


class FunctionUrlServer:
    """A Lambda Function URL on 127.0.0.1: HTTP requests become function-URL events for one handler.

    With `authorize` (AuthType AWS_IAM) each request must pass it first, as Lambda checks the signature and
    the caller's lambda:InvokeFunctionUrl grant: it returns requestContext.authorizer, or raises
    PermissionError, which is answered 403 without running the function."""

    def __init__(self, invoke: Callable[[dict], dict],
                 authorize: Callable[[str, str, dict, bytes], dict] | None = None) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = raw.decode() or None
                path, _, query = self.path.partition("?")
                authorizer = None
                if outer.authorize is not None:
                    try:
                        authorizer = outer.authorize(self.command, f"http://{self.headers.get('Host')}{self.path}",
                                                     dict(self.headers.items()), raw)
                    except PermissionError as refused:
                        return self._answer({"statusCode": 403, "headers": {"Content-Type": "application/json"},
                                             "body": json.dumps({"Message": f"Forbidden: {refused}"})})
                event = {"version": "2.0", "rawPath": path, "rawQueryString": query,
                         "queryStringParameters": {k: v[0] for k, v in urllib.parse.parse_qs(query).items()} or None,
                         "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "isBase64Encoded": False,
                         "requestContext": {"http": {"method": self.command, "path": path, "protocol": "HTTP/1.1",
                                                     "sourceIp": self.client_address[0],
                                                     "userAgent": self.headers.get("User-Agent", "-")},
                                            "requestId": "local", "routeKey": "$default", "stage": "$default",
                                            "accountId": "local", "apiId": "local", "domainName": "127.0.0.1",
                                            "domainPrefix": "local", "time": "-", "timeEpoch": 0}}
                if authorizer is not None:
                    event["requestContext"]["authorizer"] = authorizer
                try:
                    self._answer(outer.invoke(event))
                except Exception:  # what Lambda answers when the function itself fails
                    self._answer({"statusCode": 502, "body": json.dumps({"Message": "Internal Server Error"})})

            def _answer(self, response: dict) -> None:
                payload = (response.get("body") or "").encode()
                self.send_response(response.get("statusCode", 500))
                for name, value in (response.get("headers") or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args) -> None:
                pass

        self.invoke, self.authorize = invoke, authorize
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LocalLifecycle:
    def __init__(self, model: str = "churn", workdir: Path = Path(".local"), interactive: bool = False,
                 rows: int = 5000, traffic_requests: int = 150, say: Callable[[str], None] = print,
                 verbose: bool = False, enforce_iam: bool = True,
                 adjust_templates: Callable[[dict[str, dict]], None] | None = None, models_dir: Path | None = None,
                 data: Path | str | None = None, show_links: Callable[[str], None] = print,
                 alongside: Sequence[str] = (), approve_second_run: bool = False, scenario: str = "drift") -> None:
        """alongside: other models whose whole lifecycle runs at the same time, on the same control plane;
        approve_second_run: the second run's approval request is approved too (and followed to its end);
        scenario: what starts the second run: "drift" (a shifted population) or "quality" (ground truth shows the
        served model gone wrong: pipelines/local/quality_scenario.py)."""
        from pipelines.model_folder import load_dataset_module

        self.model, self.workdir, self.interactive = model, Path(workdir).resolve(), interactive
        self.verbose, self.enforce_iam, self.adjust_templates = verbose, enforce_iam, adjust_templates
        self.admin = None  # the driver's own credentials once IAM is enforced
        self.rows, self.traffic_requests, self.say = rows, traffic_requests, say
        self.show_links = show_links  # approval links: whole, one per line, never wrapped by a console
        self.data = Path(data).resolve() if data else None
        if self.data is not None and not self.data.is_file():
            raise LifecycleError(f"--data {data}: no such file")
        self.models_dir = Path(models_dir or configured_models_dir()).resolve()
        self.model_dir = find_model_dir(model, self.models_dir)
        self.spec = load_spec(self.model_dir)
        self.dataset = load_dataset_module(self.model_dir, self.spec)  # a missing maker or function: a SpecError
        self.result = LifecycleResult(metric_columns=self.spec.metric_columns())
        self.alongside = [m for m in dict.fromkeys(alongside) if m != model]
        for other in self.alongside:  # a missing folder or a bad spec is refused before anything starts
            load_dataset_module(find_model_dir(other, self.models_dir), load_spec(find_model_dir(other, self.models_dir)))
        self.lanes: list[LocalLifecycle] = []
        self.approve_second_run = approve_second_run
        if scenario not in SCENARIOS:
            raise LifecycleError(f"scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
        self.scenario = scenario
        # The shared endpoint's capture files already split: S3 sends one event an object, so each is split once;
        # the lanes (shallow copies) share this set.
        self.split_files: set[str] = set()

    # ------------------------------------------------------------------ the lifecycle
    def run(self, then: Callable[[LocalLifecycle], None] | None = None, setup_only: bool = False) -> LifecycleResult:
        """The lifecycle (or, setup_only, just synthesis, provisioning and the seed data); then `then(self)` while
        the emulation is still up (`mlops local up --keep` / `mlops local serve` keep it running there)."""
        started, saved_environment = time.perf_counter(), dict(os.environ)
        self._then, self._setup_only = then, setup_only
        try:
            return self._run(started)
        finally:  # the process (a test session, a notebook) gets its environment back
            os.environ.clear()
            os.environ.update(saved_environment)

    def _run(self, started: float) -> LifecycleResult:
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true", "MLOPS_LOCAL_DIR": str(self.workdir),
                           "POWERTOOLS_METRICS_NAMESPACE": "MLOps", "SAGEMAKER_SUPPRESS_V2_WARNING": "1"})
        if not self.verbose:  # handlers' JSON logs and EMF metrics are for CloudWatch; the demo shows its own progress
            os.environ.update({"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"})
        for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(variable, None)
        import logging

        from moto import mock_aws
        from moto.core import DEFAULT_ACCOUNT_ID

        # moto logs every JSONPath miss of Choice/Catch evaluation at ERROR; the run's history has the facts.
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)

        self.account, self.region = DEFAULT_ACCOUNT_ID, "us-east-1"
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
            try:
                self._setup() if self._setup_only else self._lifecycle()
                if self._then is not None:
                    self._then(self)
            finally:
                self._close()
        self.result.timings["total_s"] = round(time.perf_counter() - started, 1)
        return self.result

    def _setup(self) -> None:
        self._step("synthesize the CDK app (local environment)", self._synthesize)
        self._step("provision the stacks into the AWS emulation", self._provision)
        self._step("seed the training data", lambda: self._seed(shift=0.0))

    def _lifecycle(self) -> None:
        self._setup()
        for lane in self.lanes:
            lane._step("seed the training data", lambda lane=lane: lane._seed(shift=0.0))
        with ThreadPoolExecutor(max_workers=len(self.lanes) or 1, thread_name_prefix="lane") as pool:
            others = {lane.model: pool.submit(lane._model_lifecycle) for lane in self.lanes}
            self._model_lifecycle()
            for lane in self.lanes:
                others[lane.model].result()
                self.result.alongside[lane.model] = lane.result

    def _lane(self, model: str) -> LocalLifecycle:
        """Another model's lifecycle on this one's emulation (its stacks, roles, servers and hosting shared): its own
        spec, data, working folder, approvers' mailbox, data scientist and result."""
        from pipelines.model_folder import load_dataset_module

        lane = copy.copy(self)
        lane.model, lane.model_dir = model, find_model_dir(model, self.models_dir)
        lane.spec = load_spec(lane.model_dir)
        lane.dataset = load_dataset_module(lane.model_dir, lane.spec)
        lane.result, lane.data, lane.lanes = LifecycleResult(metric_columns=lane.spec.metric_columns()), None, []
        lane.workdir = self.workdir / "alongside" / model
        lane.workdir.mkdir(parents=True, exist_ok=True)
        lane.say = lambda line, say=self.say: say(f"[{model}] {line}")
        lane._subscribe_inbox()
        lane.data_scientist = lane._data_scientist(DEMO_REQUESTER.replace("@", f"+{model}@"))  # a person of its own
        return lane

    def _model_lifecycle(self) -> None:
        """Run 1 (approved through the link), serving, shifted traffic, new data, the drift check, run 2."""
        first = self._step("run 1: retraining pipeline", lambda: self._run_pipeline(trigger_approval=True))
        if first["status"] != "SUCCEEDED":
            raise LifecycleError(f"run 1 ended {first['status']}: {first.get('error')} {first.get('cause')}; "
                                 f"first failed step: {first.get('failed_step')}")
        self._step("the approved model serves predictions", self._check_serving)
        if self.scenario == "quality":
            self._quality_lifecycle()
        else:
            self._step("traffic from a shifted population", self._send_traffic)
            self._step("new labelled data arrives (shifted population)", lambda: self._seed(shift=1.0, seed=11))
            self._step("drift hook", self._drift_hook)
            self._step("run 2 (started by the drift hook)", lambda: self._follow_second_run(self.result.drift))
        self._summarize()

    def _quality_lifecycle(self) -> None:
        """Ground truth judges the served model: a clean window stays quiet, a changed world starts run 2."""
        from pipelines.local import quality_scenario as scenario

        truth = self._step("traffic from the training population",
                           lambda: scenario.traffic_with_truth(self, seed=5000))
        self._step("its ground truth arrives (mlops labels put)", lambda: self._put_labels(truth))
        self._step("quality check (the same world)", self._quality_check)
        if self.result.quality[-1]["decision"] == "drop":
            raise LifecycleError(f"the quality check found a drop in a clean window: {self.result.quality[-1]['reason']}")
        moved = self._step("the world changes: traffic whose right answers moved",
                           lambda: scenario.changed_world(scenario.traffic_with_truth(self, seed=9000),
                                                          self.spec.task.type, seed=9))
        self._step("its ground truth arrives (mlops labels put)", lambda: self._put_labels(moved))
        self._step("quality check (the changed world)", self._quality_check)
        self._step("run 2 (started by the quality check)", lambda: self._follow_second_run(self.result.quality[-1]))

    def _put_labels(self, truth: dict[str, str]) -> None:
        from pipelines.local import quality_scenario as scenario

        uploaded = scenario.put_labels(self, truth)
        self.result.labels.append(uploaded)
        self.say(f"    {uploaded['accepted']} labels put as {DEMO_REQUESTER}: {uploaded['location']}")

    def _quality_check(self) -> None:
        from pipelines.local import quality_scenario as scenario

        result = scenario.check(self)
        self.result.quality.append(result)
        key = result["html_report_uri"].split(f"{self.bucket}/", 1)[1]
        report = self.workdir / "reports" / f"quality-report-{len(self.result.quality)}.html"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_bytes(self._aws("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read())
        self.result.quality_report = str(report)
        labels = result["labels"]
        self.say(f"    {result['decision']}: {result['reason']} ({labels['joined']} labels joined, "
                 f"{labels['unknown']} unknown: requests capture did not sample)")

    def _step(self, title: str, action: Callable):
        self.say(f"[bold cyan]▶ {title}[/]")
        started = time.perf_counter()
        value = action()
        self.result.timings[title] = round(time.perf_counter() - started, 2)
        return value

    # ------------------------------------------------------------------ set-up
    def _synthesize(self) -> None:
        self.templates = synthesize(self.model, self.account, self.region, self.models_dir, self.alongside)
        if self.adjust_templates:  # tests take a grant away to prove enforcement notices
            self.adjust_templates(self.templates)

    def driver_session(self) -> boto3.Session:
        """The driver's own credentials as a session (the admin's once IAM is enforced), not the environment's."""
        if self.admin:
            return self.admin.session(self.region)
        return boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=self.region)

    def _aws(self, service: str):
        """A client for the driver's own calls: the admin's, never a handler's from the environment. Made under a
        lock: lanes run in threads, and boto3's default session is not safe to make clients from concurrently."""
        with _CLIENTS:
            return self.admin.client(service, self.region) if self.admin else boto3.client(service, region_name=self.region)

    @staticmethod
    def _as_driver():
        """For library code that builds clients from the environment (Pipelines, ApprovalStore)."""
        from pipelines.local.glue import ENV_LOCK

        return ENV_LOCK

    def _provision(self) -> None:
        from pipelines.local import glue, moto_extensions
        from pipelines.local.provision import Provisioner
        from pipelines.local.serving import Hosting, LocalHostingServer

        moto_extensions.install()
        glue.install_service_names()
        self.hosting = LocalHostingServer(Hosting(self.workdir / "hosting")).__enter__()
        self.dispatch = glue.LambdaDispatch({"SAGEMAKER_RUNTIME_URL": self.hosting.url})
        self.dispatch.install()
        control = naming.control_stack(LOCAL_ENV)
        decide_logical = function_logical_id(self.templates[control], APPROVAL_DECIDE)
        runs_logical = function_logical_id(self.templates[control], "RunsApiFunction")
        decide = naming.control_function(LOCAL_ENV, "approval-decide")  # the environment's approval URL
        runs = naming.control_function(LOCAL_ENV, "runs-api")  # the environment's runs API
        self.approval_server = FunctionUrlServer(lambda event: self.dispatch.invoke(decide, event))
        self.runs_server = runs_api_server(lambda event: self.dispatch.invoke(runs, event), runs, self.account, self.region)
        provisioner = Provisioner(self.account, self.region, self.dispatch,
                                  {decide_logical: self.approval_server.url, runs_logical: self.runs_server.url})
        for stack, template in self.templates.items():
            provisioner.provision(stack, template)
        self.provisioned = provisioner.result
        self.bucket = naming.artifact_bucket(LOCAL_ENV, self.account, self.region)
        self._subscribe_inbox()
        self.data_scientist = self._data_scientist(DEMO_REQUESTER)
        self.lanes = [self._lane(model) for model in self.alongside]  # their people sign in before enforcement
        if self.enforce_iam:
            self._enforce_iam(provisioner)
        for lane in self.lanes:  # the driver's own credentials, made after the lanes were
            lane.admin = self.admin
        glue.install_sagemaker_sync(self.model_dir, self.workdir / "training", self._training_log,
                                    self.provisioned.role_credentials.of if self.enforce_iam else None, self.admin)
        for lane in self.lanes:  # what `cdk deploy` publishes for their training steps too
            glue.stage_source_archives(lane.model_dir)
        self.say(f"    provisioned {sum(len(v) for v in self.provisioned.values.values())} resources, "
                 f"{len(self.provisioned.functions)} functions; endpoints served at {self.hosting.url}, "
                 f"approval links at {self.approval_server.url}, runs API (AWS_IAM) at {self.runs_server.url}")

    def _data_scientist(self, email: str):
        """The data scientist: an IAM user named after their email, tagged with the model, on the environment's
        data-scientist role (its trust makes the session name and source identity their user name, and the session's
        model tag the user's); signed in before IAM is enforced."""
        from pipelines.local import iam

        role = f"arn:aws:iam::{self.account}:role/{naming.person_role(LOCAL_ENV, 'data-scientist')}"
        return iam.person(role, email, self.region, model=self.model)

    def _enforce_iam(self, provisioner) -> None:
        from pipelines.local import iam

        self.admin = iam.create_admin(self.account, self.region)
        provisioner.assume_roles()
        self._enforcement = iam.enforced()
        self._enforcement.__enter__()
        self.say(f"    IAM enforced: {len(self.provisioned.role_credentials)} roles with their synthesized policies")

    def _training_log(self, line: str) -> None:
        if self.verbose or line.startswith(self.spec.training_log_filters()) or "epoch=1;" in line:
            self.say(f"    [dim]{line}[/]")

    def _subscribe_inbox(self) -> None:
        """The approvers' mailbox: an SQS queue on the approval topic (SNS email cannot leave this machine)."""
        sqs, sns = boto3.client("sqs"), boto3.client("sns")
        self.inbox = sqs.create_queue(QueueName=f"approver-inbox-{self.model}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        topic = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(f"{self.model}-{LOCAL_ENV}-approvals"))
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def _seed(self, shift: float, seed: int = 7) -> None:
        """The model's generated data, or (first dataset, `--data`) the person's own CSV file."""
        if self.data is not None and shift == 0.0:
            path, described = self.data, f"{self.data} (your file)"
        else:
            columns = self.dataset.generate(self.rows, seed, shift)
            path = self.dataset.write_csv(columns, self.workdir / "data" / f"train-{seed}.csv")
            # the rows generate() gave: a real data set may hold fewer than asked for (--rows is at most)
            written = len(next(iter(columns.values()))) if columns else 0
            described = f"{written} rows, population shift {shift}" + (
                f" ({self.rows} asked for; the model's generate() gave {written})" if written != self.rows else "")
        key = f"{self.spec.dataset.s3_prefix}{self.spec.dataset.file_name}"
        version = self._aws("s3").put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes()).get("VersionId")
        self.say(f"    s3://{self.bucket}/{key} version {version} ({described})")

    # ------------------------------------------------------------------ runs
    def _run_pipeline(self, trigger_approval: bool) -> dict:
        from pipelines.client import Pipelines

        # Through the runs API, signed as the data scientist: not under ENV_LOCK, which the API's handler takes.
        run = Pipelines(env=LOCAL_ENV, session=self.data_scientist.session(self.region), models_dir=self.models_dir).start(
            self.model, reason="local lifecycle")
        self.say(f"    started {run.name} through the runs API as {DEMO_REQUESTER} (data scientist)")
        return self._follow(run.arn, approve=trigger_approval)

    def _follow(self, execution_arn: str, approve: bool, stop_at: str | None = None, timeout_s: float = 600) -> dict:
        from lambdas.shared.run_state import APPROVAL_STEP

        sfn = self._aws("stepfunctions")
        seen, approved, reached, deadline = 0, False, False, time.time() + timeout_s
        while time.time() < deadline:
            events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
            for event in events[seen:]:
                entered = event.get("stateEnteredEventDetails")
                if entered:
                    self.say(f"    [green]●[/] {entered['name']}")
                    reached = reached or bool(stop_at and entered["name"] == stop_at)
            seen = len(events)
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] in TERMINAL:
                return self._record_run(execution_arn)
            # The approval step waits for approvers once its request is recorded: until then the run is still
            # requesting approval (lambdas.shared.run_state.outcome), however fast or slow the machine is.
            if reached and (stop_at != APPROVAL_STEP or self._pending_approval(execution_arn)):
                return self._record_run(execution_arn, stopped_at=stop_at)
            if approve and not approved and self._pending_approval(execution_arn):
                self._decide_as_approver(execution_arn)
                approved = True
            time.sleep(0.2)
        raise LifecycleError(f"{execution_arn} did not finish within {timeout_s:.0f} s")

    def _record_run(self, execution_arn: str, stopped_at: str | None = None) -> dict:
        sfn = self._aws("stepfunctions")
        described = sfn.describe_execution(executionArn=execution_arn)
        history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        (self.workdir / f"history-{described['name']}.json").write_text(json.dumps(history, indent=1, default=str))
        run = {"name": described["name"], "status": described["status"], "arn": execution_arn,
               "error": described.get("error"), "cause": described.get("cause"), "waiting_at": stopped_at,
               "input": json.loads(described["input"]), "failed_step": _first_failure(history),
               "outcome": self._outcome(described, history).model_dump(),
               "started": str(described["startDate"]), "stopped": str(described.get("stopDate") or "")}
        self.result.runs.append(run)
        return run

    def _outcome(self, described: dict, history: list[dict]):
        """The run's outcome as the runs API reports it (one model: lambdas.shared.run_state)."""
        from lambdas.runs.logic import needs_approval_record
        from lambdas.shared.dal import ApprovalStore
        from lambdas.shared.run_state import Objective, RunState, history_steps, outcome

        steps, failure = history_steps(history)
        approval = None
        if needs_approval_record(history):
            with self._as_driver():
                approval = ApprovalStore(naming.audit_table(LOCAL_ENV)).get(self.model, described["name"])
        state = RunState.parse(described.get("output") if described["status"] == "SUCCEEDED" else described.get("input"))
        current = next((s.name for s in reversed(steps) if s.status == "running"), steps[-1].name if steps else None)
        return outcome(described["status"], state, Objective.of(self.spec.objective), current=current, failure=failure,
                       approval=approval, error=described.get("error"), cause=described.get("cause"))

    def _pending_approval(self, execution_arn: str) -> bool:
        from lambdas.shared.dal import ApprovalStore

        with self._as_driver():
            record = ApprovalStore(naming.audit_table(LOCAL_ENV)).get(self.model, execution_arn.rsplit(":", 1)[1])
        return bool(record and record.get("status") == "PENDING")

    def _decide_as_approver(self, execution_arn: str = "") -> None:
        messages = self._aws("sqs").receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        links = {}
        for message in messages:
            body = json.loads(message["Body"])
            approver = body["MessageAttributes"]["approver"]["Value"]
            found = dict(re.findall(r"^(Approve|Reject):\s+(\S+)$", body["Message"], re.M))
            if found:
                links[approver] = found
        if not links:
            raise LifecycleError("the approval request reached no approver with links")
        approver, found = sorted(links.items())[0]
        if self.interactive:
            self.say("    [bold yellow]Waiting for a person[/]: open one of these links (each approver's own; each "
                     "link is printed whole on one line)")
            self.show_links(approval_links_text(execution_arn.rsplit(":", 1)[1], links))
            return
        page = urllib.request.urlopen(found["Approve"], timeout=10).read().decode()  # what the approver sees first
        token = re.search(r"name='t' value='([^']+)'", page).group(1)
        form = urllib.parse.urlencode({"t": token, "reason": "local lifecycle: metrics reviewed"}).encode()
        answer = urllib.request.urlopen(urllib.request.Request(found["Approve"].split("?")[0], data=form), timeout=10).read().decode()
        self.say(f"    {approver} opened the link and approved: {re.search(r'<h1>(.*?)</h1>', answer).group(1)}")

    # ------------------------------------------------------------------ serving, traffic, drift
    def _runtime(self):
        return boto3.client("sagemaker-runtime", endpoint_url=self.hosting.url)

    def _rows(self, count: int, seed: int, shift: float) -> list[dict]:
        columns = self.dataset.generate(count, seed, shift)
        return [dict(zip(self.spec.dataset.features, values))
                for values in zip(*(columns[n].tolist() for n in self.spec.dataset.features))]

    @property
    def _shared(self) -> bool:
        return self.spec.deployment.hosting == "shared"

    def _invoke(self, rows: list[dict]) -> bytes:
        """One request to the model's serving endpoint, or (hosting: shared) its inference component on the shared
        endpoint; a component at zero copies refuses the first request while it scales out, so it is asked again."""
        from pipelines.client import no_capacity

        target = naming.endpoint(self.model, LOCAL_ENV, "prod")
        request = {"EndpointName": target, "ContentType": "application/json", "Body": json.dumps({"instances": rows})}
        if self._shared:
            request.update(EndpointName=naming.shared_endpoint(LOCAL_ENV), InferenceComponentName=target)
        for attempt in range(20):
            try:
                return self._runtime().invoke_endpoint(**request)["Body"].read()
            except ClientError as error:
                if not no_capacity(error) or attempt == 19:
                    raise
                self.say(f"    {target} has no copy (scaled to zero): one starts; asking again")
                time.sleep(0.2)

    def _check_serving(self) -> None:
        body = self._invoke(self._rows(3, 99, 0.0))
        self.result.predictions = json.loads(body)["predictions"]
        self.result.served_by = json.loads(body).get("model")
        self.say(f"    {naming.endpoint(self.model, LOCAL_ENV, 'prod')} → {self.result.predictions}")

    def _send_traffic(self) -> None:
        for request in range(self.traffic_requests):
            self._invoke(self._rows(20, 1000 + request, 1.0))
        if self._shared:
            self._split_shared_capture()
        captured, self.result.captured_rows = self._captured()
        self.say(f"    {self.traffic_requests} requests x 20 rows; {captured} captured "
                 f"({self.spec.deployment.data_capture_percent}% sampling)")

    def _split_shared_capture(self) -> None:
        """What EventBridge does in AWS as each capture file of the shared endpoint lands: the control plane's splitter
        gets its S3 "Object Created" event and files the file's lines by model (lambdas/drift/split.py)."""
        splitter = self.provisioned.function_named("CaptureSplit")
        s3, prefix = self._aws("s3"), f"data-capture/{naming.shared_endpoint(LOCAL_ENV)}/AllTraffic/"
        with _SPLITTING:  # a lane counts its captures only once every file listed here is split, by whichever lane
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if item["Key"] not in self.split_files:
                        self.split_files.add(item["Key"])
                        self.dispatch.invoke(splitter.name, s3_object_created(
                            self.bucket, item["Key"], item["Size"], self.account, self.region))

    def _captured(self) -> tuple[int, int]:
        """(requests, rows) captured under the model's own serving-target prefix (split there from a shared
        endpoint's): rows counted from each answer's predictions, since the sample may hold the 3-row serving check."""
        from lambdas.shared.capture_files import decoded_data

        s3, prefix = self._aws("s3"), f"data-capture/{naming.endpoint(self.model, LOCAL_ENV, 'prod')}/"
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
                for o in page.get("Contents", [])]
        lines = [line for key in keys for line in s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().splitlines()]
        rows = sum(len(json.loads(decoded_data(json.loads(line)["captureData"]["endpointOutput"]))["predictions"])
                   for line in lines)
        return len(lines), rows

    def _drift_hook(self) -> None:
        # What the model's drift schedule sends the control plane's drift check (Scheduler fills in the context
        # attributes): stacks/model_stack.py.
        drift_function = self.provisioned.function_named("DriftChecks")
        event = {"model": self.model, "scheduled_time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "execution_id": "local-drift-check"}
        self.result.drift = self.dispatch.invoke(drift_function.name, event)
        key = self.result.drift["html_report_uri"].split(f"{self.bucket}/", 1)[1]
        report = self.workdir / "reports" / "drift-report.html"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_bytes(self._aws("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read())
        self.result.drift_report = str(report)
        self.say(f"    drift={self.result.drift['drift']} in {self.result.drift['drifted_features']}; "
                 f"{self.result.drift['reason']}")

    def _follow_second_run(self, check: dict) -> None:
        """The run the drift hook's or the quality check's result (check) started."""
        arn = check.get("execution_arn")
        if not arn:
            raise LifecycleError(f"the {self.scenario} check started no run: {check.get('reason')}")
        if self.approve_second_run:
            self.result.second_run = self._follow(arn, approve=True)
            return
        run = self._follow(arn, approve=False, stop_at="WaitForApproval")
        if run["status"] == "RUNNING":
            self._aws("stepfunctions").stop_execution(executionArn=arn, error="LocalLifecycleEnd",
                                                         cause="the local lifecycle ends at the second approval request")
        self.result.second_run = run

    # ------------------------------------------------------------------ summary
    def _summarize(self) -> None:
        from lambdas.shared.dal import ApprovalStore
        from pipelines.client import Pipelines

        # An explicit session, outside ENV_LOCK: models() asks the runs API what serves each stage, and the API's
        # handler takes that lock.
        self.result.versions = [vars(v) for v in Pipelines(env=LOCAL_ENV, session=self.driver_session(),
                                                                models_dir=self.models_dir).models(self.model)]
        with self._as_driver():
            items = ApprovalStore(naming.audit_table(LOCAL_ENV)).dynamodb.scan()["Items"]
        self.result.approvals = [{k: item.get(k) for k in ("sk", "status", "decided_by", "decided_at", "reason", "channel",
                                                           "source_ip", "requested_by")}
                                 for item in items if item["sk"].startswith("approval#")
                                 and item["pk"] == f"model#{self.model}"]  # this model's, of the environment's table

    def _close(self) -> None:
        if getattr(self, "_enforcement", None) is not None:
            self._enforcement.__exit__(None, None, None)
        for server in (getattr(self, "approval_server", None), getattr(self, "runs_server", None),
                       getattr(self, "hosting", None)):
            if server is not None:
                server.close()


def s3_object_created(bucket: str, key: str, size: int, account: str, region: str) -> dict:
    """An S3 "Object Created" event as EventBridge delivers it (Amazon S3 user guide, "EventBridge message structure")."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
            "account": account, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket},
                       "object": {"key": key, "size": size, "etag": uuid.uuid4().hex, "sequencer": "0"},
                       "request-id": uuid.uuid4().hex[:16].upper(), "requester": account,
                       "source-ip-address": "127.0.0.1", "reason": "PutObject"}}


def approval_links_text(execution: str, links: dict[str, dict[str, str]]) -> str:
    """Each approver's own links, named, each URL whole on a line of its own (copying a line copies a link that
    verifies: a console that hard-wraps a long link breaks its token, which the page then calls malformed)."""
    lines = [f"approval requested for run {execution} (each link below is one whole line; open it in a browser):"]
    for approver, found in sorted(links.items()):
        lines += [f"{approver}, approve:", found["Approve"], f"{approver}, reject:", found["Reject"]]
    return "\n".join(lines)


APPROVAL_DECIDE = "ApprovalDecideHandler"  # the control stack's approval-link function (stacks/constructs/approval.py)


def function_logical_id(template: dict, prefix: str) -> str:
    return next(k for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function" and k.startswith(prefix))


def runs_api_server(invoke: Callable[[dict], dict], function_name: str, account: str, region: str) -> FunctionUrlServer:
    """The runs API's Function URL with AWS_IAM auth played locally: moto verifies the signature and the grant."""
    from pipelines.local.iam import verify_function_url_request

    function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
    return FunctionUrlServer(invoke, authorize=lambda method, url, headers, body:
                             verify_function_url_request(method, url, headers, body, function_arn, account))


def _first_failure(history: list[dict]) -> dict | None:
    """The first task that failed in a run's history: the state, the error and its cause."""
    state = None
    for event in history:
        state = (event.get("stateEnteredEventDetails") or {}).get("name", state)
        for key, details in event.items():
            if key.endswith("FailedEventDetails") and isinstance(details, dict):
                return {"state": state, "error": details.get("error"), "cause": details.get("cause")}
    return None
