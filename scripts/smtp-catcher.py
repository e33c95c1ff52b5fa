#!/usr/bin/env python3
"""A real SMTP server for Shoko's tests (aiosmtpd on 127.0.0.1).

    smtp-catcher.py PORT OUT.jsonl [--delay SECONDS]

Listens on PORT (0 picks a free one), prints `ready PORT` once it accepts
connections, and appends each message it receives to OUT.jsonl as one JSON
line with the envelope recipients, the decoded Subject, the decoded text body,
the Message-ID and the raw Subject header. With --delay it waits that long
before accepting each message (to catch a job mid-run). Stops when its
standard input closes.
"""
import asyncio
import email
import email.policy
import json
import socket
import sys
import time

from aiosmtpd.controller import Controller


class Catcher:
    def __init__(self, path, delay):
        self.path = path
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        raw = email.message_from_bytes(envelope.content, policy=email.policy.compat32)
        body = msg.get_body(preferencelist=("plain",))
        line = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": str(msg["subject"]),
            "raw_subject": raw["subject"],
            "message_id": msg["message-id"],
            "body": body.get_content() if body else "",
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        try:
            print("received", line["message_id"], flush=True)
        except BrokenPipeError:
            pass  # nobody is reading our output; the file has the message
        return "250 Message accepted"


def main():
    port = int(sys.argv[1])
    if port == 0:
        # aiosmtpd checks that it can connect to the port it was given, so a
        # free port is found first.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    path = sys.argv[2]
    delay = float(sys.argv[sys.argv.index("--delay") + 1]) if "--delay" in sys.argv else 0.0
    controller = Controller(Catcher(path, delay), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", port, flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
