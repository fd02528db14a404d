"""`mlops local serve` and `mlops local up --keep`: the local emulation kept running as a server on 127.0.0.1.

The process that provisioned the stacks into moto keeps them: moto's own server (`moto.server.ThreadedMotoServer`)
answers every AWS API on one port of 127.0.0.1 from the same in-process backends the handlers use, next to the
runs API, the approval links and the hosting server the local mode already serves. `server.json` in the work folder
says where all of it is and holds the local identities' credentials (data scientist, platform admin, each approver:
sessions of the synthesized roles and policies, IAM enforced as in the local lifecycle). From any shell or notebook,
`Pipelines(env="local")` and `mlops ... --env local` read it (`MLOPS_LOCAL_AS` picks the identity) and reach the
server instead of AWS. `mlops local down` asks the server to stop through its control port (the token in
server.json), and the file goes with it.

Approval emails cannot leave the machine: the server reads the approvers' mailbox and prints each approver's links,
whole, one per line, and writes each email to <work folder>/inbox/.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import boto3

from pipelines.client import EnvironmentProblem

STATE_FILE = "server.json"
IDENTITY_VARIABLE = "MLOPS_LOCAL_AS"
DEFAULT_IDENTITY = "data-scientist"


class LocalServerProblem(EnvironmentProblem):
    """No local server to reach, or it does not answer; the message says what to run."""


@dataclass
class Connection:
    """What server.json says: where the emulation answers and as whom one may call it."""

    url: str
    control_url: str
    account: str
    region: str
    model: str
    workdir: Path
    identities: dict[str, dict[str, str]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    pid: int = 0

    def session(self, identity: str | None = None) -> boto3.Session:
        name = identity or os.environ.get(IDENTITY_VARIABLE) or DEFAULT_IDENTITY
        if name not in self.identities:
            raise LocalServerProblem(f"no local identity '{name}' ({IDENTITY_VARIABLE}); known: "
                                     f"{', '.join(sorted(self.identities))}")
        keys = self.identities[name]
        return boto3.Session(aws_access_key_id=keys["access_key_id"], aws_secret_access_key=keys["secret_access_key"],
                             aws_session_token=keys.get("session_token"), region_name=self.region)


def state_path(workdir: Path | None = None) -> Path:
    from pipelines.client import local_workdir

    return Path(workdir or local_workdir()).resolve() / STATE_FILE


def read_state(workdir: Path | None = None) -> dict | None:
    path = state_path(workdir)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def alive(state: dict, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{state['control_url']}status", timeout=timeout) as response:
            return json.loads(response.read()).get("ready") is True
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return False


def connect(workdir: Path | None = None) -> Connection:
    """The running local server, or LocalServerProblem saying how to start one."""
    path = state_path(workdir)
    state = read_state(workdir)
    if state is None:
        raise EnvironmentProblem(f"no local server is running (no {path}); fix: `mlops local serve` in another shell "
                                 "(or `mlops local serve --background`, or `mlops local up --keep`)")
    if not alive(state):
        raise EnvironmentProblem(f"the local server recorded in {path} does not answer; fix: `mlops local serve` "
                                 "(`mlops local down` clears the stale record)")
    return Connection(url=state["url"], control_url=state["control_url"], account=state["account"],
                      region=state["region"], model=state["model"], workdir=path.parent,
                      identities=state["identities"], urls=state.get("urls", {}), pid=state.get("pid", 0))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Control:
    """GET /status (ready), POST /shutdown (with the token from server.json)."""

    def __init__(self, token: str, stop: threading.Event, status: Callable[[], dict]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._reply(200, {"ready": True, **status()} if self.path == "/status" else {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/shutdown" or not secrets.compare_digest(self.headers.get("X-Token", ""), token):
                    return self._reply(403, {"error": "wrong token"})
                self._reply(200, {"stopping": True})
                stop.set()

            def _reply(self, code: int, document: dict) -> None:
                body = json.dumps(document).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class KeptEmulation:
    """Given to LocalLifecycle.run(then=...): serves the provisioned emulation until `mlops local down` (or Ctrl-C,
    or SIGTERM)."""

    def __init__(self, port: int = 0, say: Callable[[str], None] = print, show_links: Callable[[str], None] = print,
                 poll_s: float = 1.0) -> None:
        self.port, self.say, self.show_links, self.poll_s = port, say, show_links, poll_s
        self.stop = threading.Event()

    def __call__(self, lifecycle) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per AWS call otherwise
        port = self.port or free_port()
        moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto_server.start()
        token = secrets.token_urlsafe(24)
        control = _Control(token, self.stop, lambda: {"model": lifecycle.model, "pid": os.getpid()})
        path = lifecycle.workdir / STATE_FILE
        previous = {sig: signal.signal(sig, lambda *_: self.stop.set()) for sig in (signal.SIGTERM,)} \
            if threading.current_thread() is threading.main_thread() else {}
        try:
            state = {"url": f"http://127.0.0.1:{port}", "control_url": control.url, "token": token,
                     "account": lifecycle.account, "region": lifecycle.region, "model": lifecycle.model,
                     "pid": os.getpid(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "identities": self._identities(lifecycle),
                     "urls": {"approval": lifecycle.approval_server.url, "runs_api": lifecycle.runs_server.url,
                              "hosting": lifecycle.hosting.url}}
            path.write_text(json.dumps(state, indent=1))
            path.chmod(0o600)
            self.say(f"[bold green]local server ready[/] at {state['url']} (work folder {lifecycle.workdir}); from "
                     f"another shell or a notebook: `mlops run start {lifecycle.model} --env local`, "
                     f"Pipelines(env=\"local\"); identities ({IDENTITY_VARIABLE}): {', '.join(state['identities'])}; "
                     "stop: `mlops local down`")
            self._serve_inbox(lifecycle)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            path.unlink(missing_ok=True)
            control.close()
            moto_server.stop()
            self.say("local server stopped")

    @staticmethod
    def _identities(lifecycle) -> dict[str, dict[str, str]]:
        """Data scientist, platform admin and each approver (a session of the environment's approver role named
        after their email, as the runs API maps approvers)."""
        from pipelines.local import iam
        from pipelines.naming import MODEL_TAG, person_role

        def keys(credentials) -> dict[str, str]:
            return {"access_key_id": credentials.access_key_id, "secret_access_key": credentials.secret_access_key,
                    **({"session_token": credentials.session_token} if credentials.session_token else {})}

        admin = lifecycle.admin or iam.Credentials("local", "local")
        identities = {DEFAULT_IDENTITY: keys(lifecycle.data_scientist), "admin": keys(admin)}
        role = f"arn:aws:iam::{lifecycle.account}:role/{person_role('local', 'approver')}"
        for approver in lifecycle.spec.approval.approvers:
            identities[approver] = keys(iam.sign_in(role, approver, lifecycle.account, tags={MODEL_TAG: lifecycle.model}))
        return identities

    def _serve_inbox(self, lifecycle) -> None:
        """Until stopped: each approval email in the mailbox becomes a file in inbox/ and its links are printed."""
        sqs = lifecycle._aws("sqs")
        inbox = lifecycle.workdir / "inbox"
        inbox.mkdir(exist_ok=True)
        while not self.stop.is_set():
            try:
                messages = sqs.receive_message(QueueUrl=lifecycle.inbox, MaxNumberOfMessages=10,
                                               MessageAttributeNames=["All"]).get("Messages", [])
            except Exception as error:  # the emulation is shutting down
                self.say(f"inbox: {error}")
                messages = []
            received = {}
            for message in messages:
                body = json.loads(message["Body"])
                approver = body.get("MessageAttributes", {}).get("approver", {}).get("Value", "unknown")
                found = dict(re.findall(r"^(Approve|Reject):\s+(\S+)$", body.get("Message", ""), re.M))
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                (inbox / f"{stamp}-{message['MessageId'][:8]}-{approver}.txt").write_text(body.get("Message", ""))
                if found:
                    received[approver] = found
                sqs.delete_message(QueueUrl=lifecycle.inbox, ReceiptHandle=message["ReceiptHandle"])
            if received:
                from pipelines.local.lifecycle import approval_links_text

                execution = _execution_of(next(iter(received.values()))["Approve"]) or "?"
                if _pending(lifecycle, execution):  # not the requests the lifecycle already decided
                    self.show_links(approval_links_text(execution, received))
            self.stop.wait(self.poll_s)


def _pending(lifecycle, execution: str) -> bool:
    from lambdas.shared.dal import ApprovalStore
    from pipelines import naming

    with lifecycle._as_driver():
        record = ApprovalStore(naming.audit_table("local")).get(lifecycle.model, execution)
    return bool(record and record.get("status") == "PENDING")


def _execution_of(link: str) -> str | None:
    """The run a link is for (its claims are readable; only the signature makes them trustworthy)."""
    import base64
    from urllib.parse import parse_qs, urlparse

    try:
        token = parse_qs(urlparse(link).query)["t"][0]
        payload = token.split(".")[-2]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["execution"]
    except (KeyError, IndexError, ValueError):
        return None


def down(workdir: Path | None = None, timeout_s: float = 30) -> str:
    """Stops the local server recorded in the work folder; a stale record (no server answers) is removed."""
    path, state = state_path(workdir), read_state(workdir)
    if state is None:
        raise LocalServerProblem(f"no local server is running (no {path})")
    if not alive(state):
        path.unlink(missing_ok=True)
        return f"no local server answered at {state.get('url')}; removed the stale {path}"
    request = urllib.request.Request(f"{state['control_url']}shutdown", method="POST", data=b"",
                                     headers={"X-Token": state["token"]})
    urllib.request.urlopen(request, timeout=10).read()
    deadline = time.monotonic() + timeout_s
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if path.exists():
        raise LocalServerProblem(f"the local server (pid {state.get('pid')}) did not stop within {timeout_s:g} s")
    return f"stopped the local server at {state['url']}"


def start_in_background(arguments: list[str], workdir: Path, timeout_s: float = 300) -> dict:
    """`mlops local serve` as a detached process; returns server.json once it answers. Its output goes to
    <work folder>-server.log (the work folder itself is recreated by the server)."""
    workdir = Path(workdir).resolve()
    log = workdir.with_name(f"{workdir.name}-server.log")
    existing = read_state(workdir)
    if existing is not None and alive(existing):
        raise LocalServerProblem(f"a local server already runs at {existing['url']} (pid {existing.get('pid')}); "
                                 "`mlops local down` stops it")
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "local", "serve", *arguments],
                                   stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "MLOPS_LOCAL_DIR": str(workdir)})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = read_state(workdir)
        if state is not None and state.get("pid") == process.pid and alive(state):
            return state
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise LocalServerProblem(f"the local server exited ({process.returncode}) before it was ready; log {log}:\n{tail}")
        time.sleep(0.5)
    raise LocalServerProblem(f"the local server was not ready within {timeout_s:g} s; log: {log}")
