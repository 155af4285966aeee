"""The demo's hands and eyes on the emulator (boto3 from the emulator's virtualenv).

  demo-aws.py upload ENV KEY FILE ...   upload files into the raw bucket; subscribe a queue to
                                       the topic so the notification can be shown afterwards
  demo-aws.py show ENV                 print what landed: Glue tables and partitions, curated
                                       files, rows per work item, quarantine, the notification
"""
import json
import os
import sys

import boto3

kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION", "us-east-1"))
s3, glue, ddb = boto3.client("s3", **kw), boto3.client("glue", **kw), boto3.client("dynamodb", **kw)
sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
cmd, env = sys.argv[1], sys.argv[2]
raw, lake = f"sluice-{env}-raw", f"sluice-{env}-lake"
queue_name = f"sluice-{env}-demo-inbox"

if cmd == "upload":
    args = sys.argv[3:]
    for key, path in zip(args[::2], args[1::2]):
        s3.upload_file(path, raw, key)
        print(f"  uploaded s3://{raw}/{key}")
    topic = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(f":sluice-{env}-notifications"))
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    sys.exit(0)

db = "sluice_" + env.replace("-", "_")
print("== Glue tables with partitions (what Athena sees)")
for t in glue.get_tables(DatabaseName=db)["TableList"]:
    parts = glue.get_partitions(DatabaseName=db, TableName=t["Name"])["Partitions"]
    if parts:
        cols = ", ".join(f'{c["Name"]} {c["Type"]}' for c in t["StorageDescriptor"]["Columns"][:4])
        print(f'  {db}.{t["Name"]} ({cols}, ...)')
        for p in sorted(parts, key=lambda p: p["Values"]):
            print(f'    partition {"/".join(p["Values"])} -> {p["StorageDescriptor"]["Location"]}')
print()
print("== Target model tables (config/models/: whole tables, no partitions)")
for t in glue.get_tables(DatabaseName=db)["TableList"]:
    if t.get("TableType") == "VIRTUAL_VIEW":  # a change log's current-state view
        continue
    loc = t["StorageDescriptor"]["Location"]
    prefix = loc.split(f"s3://{lake}/", 1)[-1]
    objs = s3.list_objects_v2(Bucket=lake, Prefix=prefix).get("Contents", [])
    if not glue.get_partitions(DatabaseName=db, TableName=t["Name"])["Partitions"] and objs:
        cols = ", ".join(c["Name"] for c in t["StorageDescriptor"]["Columns"])
        print(f'  {db}.{t["Name"]} ({cols}) -> {objs[0]["Key"]}')
print()
views = [t["Name"] for t in glue.get_tables(DatabaseName=db)["TableList"] if t.get("TableType") == "VIRTUAL_VIEW"]
if views:
    print("== Athena views (the current state of each change log)")
    for v in views:
        print(f"  {db}.{v}")
    print()
print(f"== Objects in s3://{lake}")
for o in s3.list_objects_v2(Bucket=lake).get("Contents", []):
    print(f'  {o["Size"]:>7}  {o["Key"]}')
print()
print("== Work items (one per file and dataset)")
items = ddb.scan(TableName=f"sluice-{env}-work")["Items"]
for i in sorted(items, key=lambda i: i["id"]["S"]):
    if "status" not in i:
        continue
    counts = ""
    if "rows_read" in i:
        counts = f'read {i["rows_read"]["N"]}, written {i["rows_written"]["N"]}, quarantined {i["rows_quarantined"]["N"]}'
    err = f' {i["error"]["S"]}: {i.get("error_message", {}).get("S", "")}' if "error" in i else ""
    print(f'  {i["status"]["S"]:<7} {i["key"]["S"]} [{i["dataset"]["S"] or "-"}] {counts}{err}'[:300])
print()
print("== Quarantine: one JSON line per rejected row")
for o in s3.list_objects_v2(Bucket=lake, Prefix="quarantine/").get("Contents", []):
    if o["Size"] == 0:  # a model table's quarantine when nothing was rejected
        continue
    print(f'-- {o["Key"]}')
    for line in s3.get_object(Bucket=lake, Key=o["Key"])["Body"].read().decode().splitlines()[:4]:
        print("  " + line[:220])
print()
print("== Notification published to the SNS topic")
url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
    envelope = json.loads(m["Body"])
    print(f'Subject: {envelope.get("Subject")}')
    print(json.dumps(json.loads(envelope["Message"]), indent=2)[:3000])
