"""Runs a state machine definition on moto's own Step Functions interpreter.

Usage: python moto_crosscheck.py CASE.json ENDPOINT
CASE: {"definition": ..., "input": ..., "functions": [names], "results": [task outputs in
invocation order]}. The Lambda functions exist in moto but do not run: each invocation returns
the next queued result (what the real handlers returned in `sluice run`).
Prints {"status", "output", "states_entered"}.
"""
import io
import json
import sys
import time
import urllib.request
import uuid
import zipfile

import boto3

case = json.load(open(sys.argv[1]))
endpoint = sys.argv[2]
region = "us-east-1"


def post(path, body):
    req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


kw = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id="test", aws_secret_access_key="test")
iam, lam, sfn = boto3.client("iam", **kw), boto3.client("lambda", **kw), boto3.client("stepfunctions", **kw)
post("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
try:
    suffix = uuid.uuid4().hex[:8]
    role = iam.create_role(RoleName=f"xcheck-{suffix}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                       "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n")
    arns = {}
    for f in case["functions"]:
        name = f"xcheck-{suffix}-{f}"
        arns[f] = lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=role, Handler="bootstrap",
                                      Code={"ZipFile": buf.getvalue()})["FunctionArn"]
    text = json.dumps(case["definition"])
    for f, arn in arns.items():
        text = text.replace("${" + f.replace("-", "_") + "_arn}", arn)
    post("/moto-api/static/lambda-simple/response",
         {"results": [json.dumps(r) for r in case["results"]], "region": region, "account_id": "123456789012"})
    machine = sfn.create_state_machine(name=f"xcheck-{suffix}", definition=text, roleArn=role)["stateMachineArn"]
    exe = sfn.start_execution(stateMachineArn=machine, name=f"run-{suffix}", input=json.dumps(case["input"]))["executionArn"]
    for _ in range(600):
        d = sfn.describe_execution(executionArn=exe)
        if d["status"] != "RUNNING":
            break
        time.sleep(0.1)
    events = sfn.get_execution_history(executionArn=exe, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    out = {"status": d["status"], "output": json.loads(d["output"]) if d.get("output") else None,
           "error": d.get("error"), "cause": d.get("cause"), "states_entered": entered}
    print(json.dumps(out))
finally:
    post("/moto-api/config", {"stepfunctions": {"execute_state_machine": False}})
