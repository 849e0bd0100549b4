"""Every request maestro-flux sends works for a guest, or has a fallback tested here.

The requests are found in the package's source, so a new one fails this test until
it is put in one of the two tables. What a guest is answered is recorded on a real
multi-user instance of each version (tests/recordings/VERSION/guest_rpcs.json);
tests/test_guest.py checks it there and on the double at every version. The fallbacks
are checked against a handle that refuses, as the broker refuses a guest, whatever
this test names. The bindings' own calls are checked as a guest in tests/test_guest.py:
``attr.get`` (answered), ``job-ingest.submit`` (urgency and owner-only flags fitted to a
guest) and ``job-manager.raise`` (a guest's own jobs; another user's is one line).
"""

from __future__ import annotations

import errno
import json
import re
from typing import Any

from brokers import RECORDED_VERSIONS, RECORDINGS, ROOT

from maestro_flux.broker import cancel, inventory, queues, study_jobs

#: Requests a guest is answered, as recorded, with what they are for.
ANSWERED = {
    "config.get": "queues and the default queue; flux-accounting in the configuration",
    "job-list.list": "polling (the guest's own jobs)",
    "resource.status": "the instance's nodes, cores and GPUs",
    "job-manager.queue-list": "queues, when config.get fails",
    "job-info.lookup": "a job's identity, for resume (the guest's own jobs)",
    "job-info.eventlog-watch": "a job's events as they happen (the guest's own jobs)",
}
#: Requests that may be refused, and the test of what maestro-flux does then.
FALLBACKS = {
    "job-manager.jobtap": "test_accounting_without_the_plugin_list",
    "config.get": "test_queues_without_config_get_and_without_either",
    "job-list.list-id": "test_a_refused_cancel_keeps_the_brokers_words_without_the_owner",
    "resource.status": "test_resources_unknown_when_resource_status_is_refused",
    "job-list.list-attrs": "test_the_views_ask_what_every_version_lists_when_not_told",
}
REFUSED = OSError(errno.EPERM, "Request requires owner credentials")


def _sent() -> set[str]:
    found = set()
    for path in (ROOT / "maestro_flux").rglob("*.py"):
        found |= set(re.findall(r'\.rpc\(\s*"([\w.-]+)"', path.read_text()))
    return found


def test_every_request_sent_is_answered_to_guests_or_has_a_tested_fallback():
    for version in RECORDED_VERSIONS:
        recorded = json.loads((RECORDINGS / version / "guest_rpcs.json").read_text())["answers"]
        assert {name for name in ANSWERED if "ok" not in recorded.get(name, {})} == set(), \
            version
    assert _sent() <= set(ANSWERED) | set(FALLBACKS), _sent() - set(ANSWERED) - set(FALLBACKS)
    assert all(name in globals() for name in FALLBACKS.values())


class Future:
    def __init__(self, answer: Any):
        self.answer = answer

    def get(self) -> Any:
        if isinstance(self.answer, OSError):
            raise self.answer
        return self.answer


class Handle:
    """Answers each topic as told; refuses the rest as a broker refuses a guest."""

    def __init__(self, answers: dict[str, Any] | None = None):
        self.answers = answers or {}
        self.asked: list[str] = []

    def rpc(self, topic: str, payload: Any = None) -> Future:
        self.asked.append(topic)
        return Future(self.answers.get(topic, REFUSED))


def test_queues_without_config_get_and_without_either():
    handle = Handle({"job-manager.queue-list": {"queues": ["pdebug", "pbatch"]}})
    found = queues.lookup_queues(handle)
    assert found.names == ("pbatch", "pdebug") and found.how == "job-manager.queue-list"
    assert handle.asked == ["config.get", "job-manager.queue-list"]
    neither = queues.lookup_queues(Handle())
    assert neither.names is None
    assert neither.describe() == ("not checked (config.get: Request requires owner "
                                  "credentials; job-manager.queue-list: Request requires "
                                  "owner credentials)")


def test_accounting_without_the_plugin_list():
    loaded = {"job-manager": {"plugins": [{"load": "mf_priority.so"}]}}
    assert queues.accounting(Handle({"config.get": loaded})) == (True, "the configuration loads it")
    unknown, how = queues.accounting(Handle({"config.get": {}}))
    assert unknown is None and how == ("job-manager.jobtap refused (Request requires owner "
                                       "credentials: a guest cannot ask it), and the "
                                       "configuration does not load mf_priority")
    assert queues.accounting(Handle())[0] is None  # config.get refused too


def test_resources_unknown_when_resource_status_is_refused():
    found = inventory.inventory(Handle())
    assert found.nodes is None
    assert found.describe() == "not known (resource.status: Request requires owner credentials)"


def test_a_refused_cancel_keeps_the_brokers_words_without_the_owner():
    words = OSError(errno.EPERM, "guests can only raise exceptions on their own jobs")
    assert cancel._not_yours(Handle(), 42, words) is words
    named = cancel._not_yours(Handle({"job-list.list-id": {"job": {"userid": 0}}}), 42, words)
    assert str(named) == ("[Errno 1] it is another user's job (owner: root, uid 0); only they "
                          "or the instance owner can cancel it")


def test_the_views_ask_what_every_version_lists_when_not_told():
    handle = Handle()
    assert study_jobs.offered_attrs(handle) == set(study_jobs.EVERYWHERE)
    assert handle.asked == ["job-list.list-attrs"]
    assert "t_run" in study_jobs.EVERYWHERE and "t_sched" not in study_jobs.EVERYWHERE

