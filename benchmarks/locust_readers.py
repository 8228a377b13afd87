"""Locust users for `benchmarks/load_readers.py`: radiologists reading a SYNTHETIC phantom study.

Not run on its own: load_readers.py starts the production stack, seeds it and runs
``locust -f benchmarks/locust_readers.py --headless ...`` with these environment variables:

    LOAD_PLAN     JSON file written by the seeding step: study id, password, the readers' usernames
    LOAD_RESULTS  JSON file this locustfile writes when the test stops (acknowledged reads, samples)
    LOAD_MODE     realistic (one case per LOAD_PACING seconds per reader) or stress (no think time)
    LOAD_PACING   seconds per case in realistic mode (30)
    LOAD_START    epoch seconds at which every reader starts reading (all have logged in by then)
    LOAD_END      epoch seconds after which no reader starts another case

Each user is one reader: it logs in (GET the login form, POST it with its CSRF token), and once every
reader is in (LOAD_START) opens its exam-1 worklist and then, case after case: the reading page, the case
API, the default volumes of the payload (raw gzip bytes, as a browser receives them: not inflated here,
not cached), an active-time ping and the answer (a call and a confidence). Requests are named by endpoint
template so that Locust's statistics group per endpoint.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from itertools import count

import gevent
from locust import FastHttpUser, constant, constant_pacing, events, task

PLAN = json.loads(open(os.environ["LOAD_PLAN"]).read()) if os.environ.get("LOAD_PLAN") else {}
MODE = os.environ.get("LOAD_MODE", "realistic")
PACING = float(os.environ.get("LOAD_PACING", "30"))
START = float(os.environ.get("LOAD_START", "0"))
END = float(os.environ.get("LOAD_END", "1e12"))
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

# Endpoint templates: the names under which requests are counted.
LOGIN_FORM, LOGIN = "GET /login/", "POST /login/"
WORKLIST = "GET /api/reading/studies/[id]/exams/1/"
PAGE, CASE = "GET /reading/[assignment]/", "GET /api/reading/[assignment]/"
VOLUME = "GET /api/reading/[assignment]/series/[handle]/volume?v="
TIME, READ = "POST /api/reading/[assignment]/time/", "POST /api/reading/[assignment]/read/"

_reader_numbers = count()
acknowledged: dict[int, list] = {}        # assignment -> [call, confidence] of the last 2xx submission
submissions = {"acknowledged": 0, "failed": 0}
samples: list[tuple] = []                 # (name, ms, ok, start epoch s)


@events.request.add_listener
def _sample(request_type, name, response_time, response_length, exception=None, start_time=None, **_kw):
    samples.append((name, round(response_time, 3), exception is None, start_time or time.time()))


@events.test_stop.add_listener
def _write_results(environment, **_kw):
    path = os.environ.get("LOAD_RESULTS")
    if not path:
        return
    with open(path, "w") as handle:
        json.dump({"acknowledged": {str(k): v for k, v in acknowledged.items()}, "submissions": submissions,
                   "samples": samples}, handle)


def _wait_time():
    if MODE == "stress":
        return constant(0)
    return constant_pacing(PACING)


class Reader(FastHttpUser):
    """One reader of the study; `wait_time` paces the cases (stress: none)."""

    wait_time = _wait_time()
    network_timeout = connection_timeout = 120.0

    def on_start(self):
        number = next(_reader_numbers)
        usernames = PLAN["readers"]
        if number >= len(usernames):          # more users than seeded readers: nothing to do
            self.stop()
            return
        self.username = usernames[number]
        self.items: list[int] = []
        self.cursor = 0
        self._login()
        gevent.sleep(max(0.0, START - time.time()))               # every reader is in: start together
        if MODE == "realistic":                                   # spread the readers over one pacing
            gevent.sleep(random.uniform(0, PACING))
        self._worklist()

    def _login(self):
        form = self.client.get("/login/", name=LOGIN_FORM)
        token = CSRF_FIELD.search(form.text or "")
        if token is None:
            raise RuntimeError(f"{self.username}: no CSRF token on the login form ({form.status_code})")
        with self.client.post("/login/", name=LOGIN, allow_redirects=False, catch_response=True,
                              data={"username": self.username, "password": PLAN["password"],
                                    "csrfmiddlewaretoken": token.group(1)},
                              headers={"Referer": f"{self.host}/login/"}) as response:
            if response.status_code != 302:
                response.failure(f"login answered {response.status_code}, not a redirect")

    def _csrf(self) -> str:
        return next((c.value for c in self.client.cookiejar if c.name == "csrftoken"), "")

    def _get(self, url: str, name: str) -> dict | None:
        """GET, without following redirects (a redirect to the login page is a failure, not a success);
        returns the JSON of an API answer."""
        with self.client.get(url, name=name, allow_redirects=False, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{url} answered {response.status_code}")
                return None
            return json.loads(response.content) if "/api/" in url else {}

    def _worklist(self):
        data = self._get(f"/api/reading/studies/{PLAN['study']}/exams/1/", WORKLIST)
        self.items = [item["assignment"] for item in data["items"]] if data else []

    @task
    def read_case(self):
        if time.time() >= END or not self.items:
            gevent.sleep(1)
            return
        assignment = self.items[self.cursor % len(self.items)]
        self.cursor += 1
        if self._get(f"/reading/{assignment}/", PAGE) is None:
            return
        payload = self._get(f"/api/reading/{assignment}/", CASE)
        if payload is None:
            return
        urls = {s["id"]: s["volume_url"] for s in payload["series"]}
        for pk in payload["default_series"]:
            self._volume(urls[pk])
        headers = {"X-CSRFToken": self._csrf(), "Referer": f"{self.host}/reading/{assignment}/"}
        self.client.post(f"/api/reading/{assignment}/time/", name=TIME, json={"seconds": 10.0},
                         headers=headers)
        answer = {"call": random.choice(["sarcoma", "leiomyoma"]), "confidence": random.randint(0, 100),
                  "active_seconds": round(random.uniform(5, 60), 1)}
        with self.client.post(f"/api/reading/{assignment}/read/", name=READ, json=answer, headers=headers,
                              catch_response=True) as response:
            if response.status_code == 200:
                stored = json.loads(response.content)
                if (stored["call"], stored["confidence"]) != (answer["call"], answer["confidence"]):
                    response.failure(f"the server echoed {stored}, not {answer}")
                    submissions["failed"] += 1
                else:
                    acknowledged[assignment] = [answer["call"], answer["confidence"]]
                    submissions["acknowledged"] += 1
            else:
                submissions["failed"] += 1

    def _volume(self, url: str):
        """The gzip bytes as sent (sendfile), timed to the last byte; checked against Content-Length."""
        started = time.perf_counter()
        with self.client.get(url, name=VOLUME, stream=True, catch_response=True,
                             headers={"Accept-Encoding": "gzip"}) as response:
            if response.status_code != 200:
                return
            received, head = 0, b""
            while chunk := response._response.read(256 * 1024):
                head = head or chunk[:2]
                received += len(chunk)
            response._response.release()
            response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            response.request_meta["response_length"] = received
            expected = int(response.headers.get("content-length") or -1)
            if received != expected or head != b"\x1f\x8b":
                response.failure(f"volume: {received} bytes of {expected}, starts {head!r} (not gzip)")

