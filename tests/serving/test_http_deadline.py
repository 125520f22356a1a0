"""urlopen with a deadline for the whole exchange: a reply that trickles in, its header or its
body, fails at the deadline; a prompt one reads as with urllib."""

import json
import time
import urllib.request

import pytest

from serving.http_deadline import urlopen_with_deadline
from tests.serving.fake_tf_serving import canned_rest_server, trickling_server


@pytest.mark.parametrize("whole_reply", [False, True], ids=["body", "header and body"])
def test_a_trickling_reply_fails_at_the_deadline(whole_reply):
    with trickling_server(interval=0.05, duration=3, whole_reply=whole_reply) as url:
        started = time.monotonic()
        with pytest.raises(TimeoutError), urlopen_with_deadline(url, 0.5) as response:
            response.read()
        assert time.monotonic() - started < 0.9


def test_a_prompt_reply_reads_as_with_urllib():
    body = json.dumps({"predictions": [1.5]}).encode()
    with canned_rest_server(body) as url:
        request = urllib.request.Request(url + "/v1/models/m:predict", data=b"{}", method="POST")
        with urlopen_with_deadline(request, 5) as response:
            assert response.status == 200 and response.read() == body
