"""The /socket contract (spec: websocket.md) against the real server, frame by frame."""

from __future__ import annotations

import json
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.conftest import Server, User, register
from tests.fakes.audio_server import AudioServer
from tests.phoenix import PhxClient, socket_url
from tests.test_jobs import start_download, unique, wait_job

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def owner(jobs_server: Server) -> User:
    return register(jobs_server.url)


@pytest.fixture(scope="module")
def done_job(owner: User, audio_server: AudioServer) -> str:
    """A completed download of the owner's."""
    job_id, _ = start_download(owner, f"{audio_server.url}/audio/{unique('done.wav')}")
    assert wait_job(owner, job_id)["status"] == "completed"
    return job_id


def test_connection_needs_a_token_or_session(jobs_server: Server, owner: User) -> None:
    for url in (socket_url(jobs_server.url), socket_url(jobs_server.url, "sf_not_a_real_token")):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, proxy=None)
        assert refused.value.response.status_code == 403
    with PhxClient(jobs_server.url, owner.token) as client:  # API token
        assert client.reply_to(client.send(None, "phoenix", "heartbeat"))[4] == {"status": "ok", "response": {}}
    cookie = "; ".join(f"{k}={v}" for k, v in owner.browser.cookies.items())
    with PhxClient(jobs_server.url, headers={"Cookie": cookie}) as client:  # browser session
        assert client.reply_to(client.send(None, "phoenix", "heartbeat"))[4]["status"] == "ok"


def test_join_replies_with_state_and_sends_the_final_event(jobs_server: Server, owner: User, done_job: str) -> None:
    with PhxClient(jobs_server.url, owner.token) as client:
        join_ref, reply = client.join(f"jobs:{done_job}")
        assert reply[0] == join_ref and reply[1] == join_ref and reply[2] == f"jobs:{done_job}"
        job = reply[4]["response"]["job"]
        assert reply[4]["status"] == "ok" and job["id"] == done_job and job["status"] == "completed"
        assert job["progress"] == 100 and job["seq"] > 0
        late = client.recv()  # a late join to a finished job gets its job:completed right away
        assert late[:4] == [join_ref, None, f"jobs:{done_job}", "job:completed"]
        assert late[4]["job_id"] == done_job and late[4]["seq"] == job["seq"]


def test_since_replays_missed_events_in_order(jobs_server: Server, owner: User, done_job: str) -> None:
    with PhxClient(jobs_server.url, owner.token) as client:
        client.join(f"jobs:{done_job}", {"since": 0})
        every = client.events()
    seqs = [f[4]["seq"] for f in every]
    assert seqs == sorted(seqs) and every[0][4]["status"] == "queued" and every[-1][3] == "job:completed"
    middle = seqs[len(seqs) // 2]
    with PhxClient(jobs_server.url, owner.token) as client:
        _, reply = client.join(f"jobs:{done_job}", {"since": middle})
        assert reply[4]["status"] == "ok"
        rest = client.events()
    assert [f[4]["seq"] for f in rest] == [s for s in seqs if s > middle]


def test_unauthorised_and_bad_joins(jobs_server: Server, owner: User, done_job: str) -> None:
    stranger = register(jobs_server.url)
    with PhxClient(jobs_server.url, stranger.token) as client:
        for topic, reason in [(f"jobs:{done_job}", "not_found"), (f"jobs:{uuid.uuid4()}", "not_found"),
                              ("jobs:not-a-uuid", "bad_topic"), ("rooms:lobby", "bad_topic")]:
            _, reply = client.join(topic)
            assert reply[4] == {"status": "error", "response": {"reason": reason}}, topic
        # Not joined: nothing leaks from the other user's job, and the topic is not usable.
        reply = client.reply_to(client.send("9", f"jobs:{done_job}", "ping"))
        assert reply[4]["status"] == "error"


def test_ping_leave_unknown_events_and_heartbeat(jobs_server: Server, owner: User, done_job: str) -> None:
    topic = f"jobs:{done_job}"
    with PhxClient(jobs_server.url, owner.token) as client:
        join_ref, _ = client.join(topic)
        ref = client.send(join_ref, topic, "ping")
        assert client.reply_to(ref) == [join_ref, ref, topic, "phx_reply", {"status": "ok", "response": {"pong": True}}]
        ref = client.send(join_ref, topic, "shout", {"x": 1})
        assert client.reply_to(ref)[4] == {"status": "error", "response": {"reason": "unknown_event"}}
        ref = client.send(None, "phoenix", "heartbeat")
        assert client.reply_to(ref) == [None, ref, "phoenix", "phx_reply", {"status": "ok", "response": {}}]
        ref = client.send(join_ref, topic, "phx_leave")
        assert client.reply_to(ref)[4] == {"status": "ok", "response": {}}
        close = client.recv() if not client.inbox or client.inbox[-1][3] != "phx_close" else client.inbox[-1]
        while close[3] != "phx_close":
            close = client.recv()
        assert close[2:] == [topic, "phx_close", {}]
        ref = client.send(join_ref, topic, "ping")  # left: the topic is not joined any more
        assert client.reply_to(ref)[4]["status"] == "error"


@pytest.mark.parametrize("frame", ["not json", json.dumps({"topic": "phoenix"}), json.dumps([1, 2, 3]),
                                   json.dumps([None, "1", "phoenix", "heartbeat", "payload must be an object"]),
                                   b"\x00binary"])
def test_malformed_frames_close_with_1003(jobs_server: Server, owner: User, frame: str | bytes) -> None:
    with connect(socket_url(jobs_server.url, owner.token), proxy=None) as ws:
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    with PhxClient(jobs_server.url, owner.token) as client:  # the server is fine
        assert client.reply_to(client.send(None, "phoenix", "heartbeat"))[4]["status"] == "ok"


def test_two_clients_on_one_job_both_get_every_event(jobs_server: Server, owner: User,
                                                     audio_server: AudioServer) -> None:
    job_id, _ = start_download(owner, f"{audio_server.url}/slow/1/{unique('shared.wav')}")
    with PhxClient(jobs_server.url, owner.token) as a, PhxClient(jobs_server.url, owner.token) as b:
        a.join(f"jobs:{job_id}", {"since": 0})
        b.join(f"jobs:{job_id}", {"since": 0})
        got_a, got_b = a.events(), b.events()
    assert [f[4] for f in got_a] == [f[4] for f in got_b]
    assert got_a[-1][3] == "job:completed"


def test_join_payload_since_must_be_a_number(jobs_server: Server, owner: User, done_job: str) -> None:
    with PhxClient(jobs_server.url, owner.token) as client:
        _, reply = client.join(f"jobs:{done_job}", {"since": "yesterday"})
        assert reply[4]["status"] == "error"
        _, reply = client.join(f"jobs:{done_job}", {"since": 10**9})
        assert reply[4]["status"] == "ok"  # nothing after that seq: the state alone
        assert 0 < reply[4]["response"]["job"]["seq"] < 10**9
