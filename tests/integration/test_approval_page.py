"""What an approver sees: links printed whole and named, and a page with everything the decision needs.

Root cause of "Malformed link" (issue 15): the local mode printed the links through a console that hard-wraps at
the terminal width; a link copied as a line (a triple-click, or the only line a person selects) is the first
fragment of the token, whose claims are not valid base64url JSON, so the decide page answered 400 "Malformed link".
"""

import hashlib
import html
import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from io import StringIO
from urllib.parse import parse_qs, unquote, urlparse

import boto3
import pytest
from rich.console import Console

from lambdas.approval import logic, tokens
from lambdas.shared import dal
from pipelines.local.lifecycle import approval_links_text
from tests.integration.conftest import BUCKET
from tests.integration.test_approval import APPROVERS, approval, http, package_status  # noqa: F401 (fixture)

KEY = "k" * 64
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/7"


def pair(approver: str = APPROVERS[0]) -> dict[str, dict[str, str]]:
    links = logic.links("http://127.0.0.1:41234/", "manual-20261123T101010-abcdef", PACKAGE, APPROVERS,
                        "arn:aws:sts::123456789012:assumed-role/ds/ds@example.com", int(time.time()) + 3600, KEY.encode())
    return {a: {"Approve": found["approve"], "Reject": found["reject"]} for a, found in links.items()}


def token_of(link: str) -> str:
    return unquote(parse_qs(urlparse(link.strip()).query)["t"][0])


def test_links_are_printed_whole_one_per_line_named_per_approver_and_a_copied_line_verifies():
    text = approval_links_text("manual-20261123T101010-abcdef", pair())
    lines = text.splitlines()
    for approver in APPROVERS:
        for action in ("approve", "reject"):
            label = lines.index(f"{approver}, {action}:")
            copied = lines[label + 1]  # what a triple-click on the link's line copies
            claims = tokens.verify(token_of(copied), KEY, int(time.time()))
            assert (claims.approver, claims.action) == (approver, action)


def test_a_link_hard_wrapped_by_a_console_is_what_the_page_called_malformed():
    link = pair()[APPROVERS[0]]["Approve"]
    console = Console(file=StringIO(), width=80)
    console.print(f"    Waiting for a person: approve {link}")  # what the local mode printed before
    first_fragment = next(line for line in console.file.getvalue().splitlines() if line.startswith("http"))
    assert first_fragment != link
    with pytest.raises(tokens.LinkError) as refused:
        tokens.verify(token_of(first_fragment), KEY, int(time.time()))
    assert refused.value.title == "Malformed link"
    console = Console(file=StringIO(), width=80)
    console.print(link, soft_wrap=True)  # the console leaves the wrapping to the terminal: the line is whole
    assert console.file.getvalue().strip() == link


class Page(HTMLParser):
    """The text of each section, the rows of each table, and the buttons of the form."""

    def __init__(self) -> None:
        super().__init__()
        self.text, self.buttons, self.rows, self._row, self._cell = [], [], [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "button":
            self.buttons.append(attrs)
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def evidence_of_a_long_named_feature() -> dict:
    """The bias and attribution summary with a feature name no narrow screen fits on one line."""
    from lambdas.shared import evidence
    from tests.support.evidence import FEATURES, explainability, with_evidence

    long_named = explainability({**FEATURES, "customer_lifetime_value_" * 6: 0.2})
    return evidence.summarize({**with_evidence({}), "explainability": long_named}).model_dump()


@pytest.fixture
def review(approval):  # noqa: F811 (the fixture imported above)
    """An approval request whose challenger (0.8123) beats an approved champion (0.7900); its links per approver."""
    from lambdas.approval import handlers
    from tests.integration.conftest import FakeContext

    sagemaker = boto3.client("sagemaker")
    champion = sagemaker.create_model_package(
        ModelPackageGroupName="churn-dev", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/c.tar.gz"}],
                                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
        CustomerMetadataProperties={"metrics": json.dumps({"validation:auc": 0.79, "validation:accuracy": 0.74})})
    state = {"run": {"model": "churn", "git_commit": "0123456789abcdef0123456789abcdef01234567", "trigger": "manual",
                     "claimed_git_commit": "deadbee",
                     "requested_by": "arn:aws:sts::123456789012:assumed-role/ds/ds@example.com", "reason": "new features",
                     "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1",
                     "hyperparameters": {"epochs": "20", "learning_rate": "0.003", "hidden_units": "64",
                                         "sagemaker_program": '"train.py"'}},
             "validation": {"dataset_uri": f"s3://{BUCKET}/datasets/churn/train.csv", "version_id": "3HL4kqtJlcpXroDTDmJ",
                            "sha256": "ab" * 32, "rows": 5000},
             "evaluation": {"metrics": {"validation:auc": 0.8123, "validation:accuracy": 0.77}, "objective": "validation:auc",
                            "value": 0.8123, "champion_value": 0.79, "champion_arn": champion["ModelPackageArn"],
                            "promote": True, "reason": "validation:auc=0.8123 (champion 0.7900)",
                            "evidence": evidence_of_a_long_named_feature()},
             "registration": {"model_package_arn": approval["package"], "version": 2}}
    sagemaker.update_model_package(ModelPackageArn=approval["package"], ModelCard={"ModelCardStatus": "PendingReview",
                                   "ModelCardContent": json.dumps({"intended_uses": {
                                       "intended_uses": "Rank customers by churn risk for outreach. " * 40,
                                       "risk_rating": "Medium"}, "additional_information": {
                                       "caveats_and_recommendations": "Not for pricing. " * 100}})})
    handlers.request_approval({"task_token": "task-token-123", "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1",
                               "execution_name": "run-1", "state": state}, FakeContext())
    messages = boto3.client("sqs").receive_message(QueueUrl=approval["queue"], MaxNumberOfMessages=10)["Messages"]
    links = {}
    for message in messages:
        body = json.loads(message["Body"])
        found = dict(re.findall(r"^(Approve|Reject):\s+(\S+)$", body["Message"], re.M))
        links[body["MessageAttributes"]["approver"]["Value"]] = {
            "approve": token_of(found["Approve"]), "reject": token_of(found["Reject"]), "message": body["Message"]}
    return links


def test_the_email_states_the_deciding_metric_threshold_delta_expiry_and_typed_hyperparameters(review):
    message = review[APPROVERS[0]]["message"]
    assert f"waiting for your decision, {APPROVERS[0]}." in message
    assert "Deciding metric: validation:auc = 0.8123 (higher is better)" in message
    assert "spec minimum 0.75: passes; champion 0.7900, delta +0.0223" in message
    assert '"epochs": 20' in message and '"learning_rate": 0.003' in message and '"epochs": "20"' not in message
    assert re.search(r"Decide by \d{4}-\d\d-\d\d \d\d:\d\d UTC \(24 hours\)", message)
    assert "dataset rows:     5,000" in message
    digest = hashlib.sha256(b"model bytes").hexdigest()
    assert f"model sha256:     {digest} (S3 version" in message and "you approve exactly these bytes" in message
    assert "claimed commit:   deadbee (sent by the requester, not verified)" in message


def test_the_page_shows_lineage_the_deciding_metric_and_expiry_and_offers_both_decisions(review):
    response = http("GET", review[APPROVERS[0]]["approve"])
    assert response["statusCode"] == 200
    page = Page()
    page.feed(response["body"])
    text = page.all_text
    assert "Review churn version 2" in text and f"You are {APPROVERS[0]}" in text
    assert "validation:auc = 0.8123 (higher is better)" in text
    rows = {row[0]: row[1:] for row in page.rows if row}
    assert rows["threshold"] == ["spec minimum 0.75: passes"]
    assert rows["champion"] == ["0.7900 (+0.0223)"]
    assert rows["validation:auc"] == ["0.8123", "0.7900"] and rows["validation:accuracy"] == ["0.7700", "0.7400"]
    assert rows["git commit"] == ["0123456789abcdef0123456789abcdef01234567 (the deployed source that trained)"]
    assert rows["claimed commit"] == ["deadbee (sent by the requester, not verified)"]
    digest = hashlib.sha256(b"model bytes").hexdigest()  # the approval fixture's released artifact
    assert rows["model sha256"][0].startswith(digest) and "you approve exactly these bytes" in rows["model sha256"][0]
    assert rows["model artifact"] == [f"s3://{BUCKET}/releases/churn/{digest}/model.tar.gz"]
    assert rows["data version"] == ["3HL4kqtJlcpXroDTDmJ"] and rows["data sha256"] == ["ab" * 32]
    assert rows["epochs"] == ["20", "int"] and rows["learning_rate"] == ["0.003", "float"]
    assert re.search(r"Decide by \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    actions = [(b["class"], b["name"]) for b in page.buttons]
    assert actions == [("approve primary", "t"), ("reject", "t")]
    for button, action in zip(page.buttons, ("approve", "reject")):
        claims = tokens.verify(button["value"], KEY, int(time.time()))
        assert (claims.approver, claims.action, claims.execution) == (APPROVERS[0], action, "run-1")


def test_reject_is_reachable_from_the_approve_link_page(review, approval):  # noqa: F811
    page = Page()
    page.feed(http("GET", review[APPROVERS[0]]["approve"])["body"])
    reject_token = next(b["value"] for b in page.buttons if b["class"] == "reject")
    decided = http("POST", reject_token, reason="segment X regressed")
    assert decided["statusCode"] == 200 and "Model rejected" in decided["body"]
    record = dal.ApprovalStore("mlops-dev-audit").get("churn", "run-1")
    assert (record["status"], record["decided_by"], record["reason"]) == ("REJECTED", APPROVERS[0], "segment X regressed")
    assert package_status(approval) == "Rejected"


CHROMIUM = next((path for path in (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome"))
                 if path), None)


BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--force-device-scale-factor=1"]
# Test-only: written into a copy of the page (the served page has no script, and its CSP forbids inline ones; a
# file:// copy carries no CSP header), it writes where the buttons are and how wide the document is into the DOM of
# the top document (the page itself, or the phone frame's host: a srcdoc frame shares its host's origin).
MEASURE = ("<script>(function(){var box=function(b){var r=b.getBoundingClientRect();"
           "return {cls:b.className,top:r.top,bottom:r.bottom,left:r.left,right:r.right};};"
           "var out=top.document.createElement('pre');out.id='measured';out.textContent=JSON.stringify({"
           "buttons:Array.prototype.map.call(document.querySelectorAll('button'),box),"
           "width:window.innerWidth,height:window.innerHeight,"
           "scrollWidth:document.documentElement.scrollWidth});"
           "top.document.body.appendChild(out);})();</script>")
# Desktop Chromium keeps a window at least 500 pixels wide: a phone's width is a frame of that width in the window.
MIN_WINDOW_WIDTH = 500


def phone_frame(page_html: str, width: int, height: int) -> str:
    return (f"<!doctype html><html><body style='margin:0'><iframe style='border:0;display:block' width='{width}' "
            f"height='{height}' srcdoc=\"{html.escape(page_html, quote=True)}\"></iframe></body></html>")


def browse(page_html: str, folder, size: tuple[int, int], name: str) -> tuple[dict, bytes]:
    """The page in headless Chromium at a viewport size (a narrow one in a frame of that size): what the measuring
    script saw, and a screenshot (PNG) saved beside the copy."""
    measured_page = page_html.replace("</body>", MEASURE + "</body>")
    width, height = size
    if width < MIN_WINDOW_WIDTH:
        measured_page, width = phone_frame(measured_page, width, height), MIN_WINDOW_WIDTH
    copy = folder / f"{name}.html"
    copy.write_text(measured_page)
    flags = [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={folder / ('profile-' + name)}", f"--window-size={width},{height}"]
    dom = subprocess.run([*flags, "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    measured = json.loads(html.unescape(re.search(r"<pre id=\"measured\">(.*?)</pre>", dom, re.S).group(1)))
    shot = folder / f"{name}.png"
    subprocess.run([*flags, f"--screenshot={shot}", copy.as_uri()], capture_output=True, timeout=60, check=True)
    return measured, shot.read_bytes()


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def served_page(review) -> str:
    response = http("GET", review[APPROVERS[0]]["approve"])
    assert response["statusCode"] == 200 and "<script" not in response["body"]
    return response["body"]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (docs/studio.md: the manual page check)")
def test_the_page_renders_in_headless_chromium_with_both_buttons_above_the_fold_at_1280x800(review, tmp_path):
    measured, png = browse(served_page(review), tmp_path, (1280, 800), "desktop")
    assert png_size(png) == (1280, 800) and len(png) > 20_000  # a rendered page, not a blank one
    assert [button["cls"] for button in measured["buttons"]] == ["approve primary", "reject"]
    assert 600 <= measured["height"] <= 800  # headless Chromium's viewport of an 800-pixel window is about 660 high
    for button in measured["buttons"]:
        assert 0 <= button["top"] and button["bottom"] <= measured["height"], button
        assert button["right"] <= measured["width"]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (docs/studio.md: the manual page check)")
def test_the_page_does_not_overflow_sideways_on_a_phone(review, tmp_path):
    measured, png = browse(served_page(review), tmp_path, (390, 844), "phone")
    assert png_size(png) == (MIN_WINDOW_WIDTH, 844) and len(png) > 10_000
    assert measured["width"] == 390 and measured["scrollWidth"] <= measured["width"], measured
    assert all(button["right"] <= measured["width"] for button in measured["buttons"])
