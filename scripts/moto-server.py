"""moto's server, as `python -m moto.server -H HOST -p PORT` runs it, with one difference:
DynamoDB requests are handled one at a time.

moto's threaded server checks a DynamoDB condition and writes the item without a lock, so two
concurrent conditional writes can both succeed (seen: both of two lock acquirers "won" under
load). DynamoDB itself applies each conditional write atomically. Serialising DynamoDB requests
gives the emulator that guarantee; every other service stays concurrent (SQS long polls,
Step Functions executions calling back into the server).

Usage: python moto-server.py HOST PORT
"""
import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
dynamodb = threading.Lock()


def serialized(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        with dynamodb:
            return list(app(environ, start_response))
    return app(environ, start_response)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)
