"""The README's first hour, word for word but on free ports: `make mailserver`, then `make run` against it on
another port; a signup to the demo event reaches the local SMTP server with links to the port served."""

from __future__ import annotations

import html
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tests.support import CONFIG_ENV, CSRF_RE, ROOT, free_port

pytestmark = pytest.mark.slow
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_command(starts: str) -> str:
    [line] = [line for line in README.splitlines() if line.startswith(starts)]
    return line.split("  #")[0].strip()


def start(command: str, env: dict, log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for(condition, what: str, timeout: float = 120.0, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process in processes:
            assert process.poll() is None, f"{process.args} exited with {process.returncode} while waiting for {what}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_readme_mailserver_and_make_run_on_another_port(tmp_path):
    smtp_port, web_port = free_port(), free_port()
    mailserver = readme_command("make mailserver").replace("make mailserver", f"make mailserver SMTP_PORT={smtp_port}")
    run = readme_command("MAIL_URL=smtp://127.0.0.1:8025 make run").replace("8025", str(smtp_port)) \
        .replace("PORT=5100", f"PORT={web_port}")
    assert shlex.split(run)[-1] == f"PORT={web_port}"
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV and not k.startswith("FLASK_")}
    env["TOWNHALL_INSTANCE"] = str(tmp_path / "instance")  # not the checkout's own instance/
    mail_log, web_log = tmp_path / "mailserver.log", tmp_path / "run.log"
    smtp = start(mailserver, env, mail_log)
    web = None
    try:
        wait_for(lambda: _listening(smtp_port), "the mail server's port", processes=[smtp])
        web = start(run, env, web_log)
        base = f"http://127.0.0.1:{web_port}"
        wait_for(lambda: answers(base + "/"), "make run", processes=[web])
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        home = opener.open(base + "/").read().decode()
        [event_path] = set(re.findall(r'href="(/events/pytorch[^"/]*)"', home))
        form = opener.open(base + event_path + "/signup").read().decode()
        token = html.unescape(CSRF_RE.search(form).group(1))
        body = urllib.parse.urlencode({"name": "First Hour", "email": "first-hour@example.org", "timezone": "UTC",
                                       "consent": "y", "csrf_token": token, "website": ""}).encode()
        with opener.open(base + event_path + "/signup", data=body) as response:
            assert response.status == 200
        wait_for(lambda: "first-hour@example.org" in mail_log.read_text(errors="replace"), "the confirmation mail",
                 processes=[smtp, web])
        wait_for(lambda: "---------- MESSAGE FOLLOWS ----------" in mail_log.read_text(errors="replace"),
                 "the message printed", processes=[smtp, web])
        printed = mail_log.read_text(errors="replace")
        assert f"127.0.0.1:{web_port}/r/" in printed  # the manage link points at the port served
        # The default port, not merely a prefix of the free port served (50003 once failed the plain check).
        assert re.search(r"127\.0\.0\.1:5000(?!\d)", printed) is None
    finally:
        if web is not None:
            stop(web)
        stop(smtp)


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
