"""`swcm serve`: the API on a tiny model (validation, script check, bounded queue), a loopback load test and an
end-to-end run of the demo page in headless Chromium."""

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import torch
from fastapi.testclient import TestClient

from swcm import from_encoder
from swcm.arguments import ServeLimits
from swcm.serving import Generator, create_app

UYGHUR_PIECE = "▁ئ"


@pytest.fixture(scope="module")
def model_dir(tiny_xlmr, tmp_path_factory):
    """A tiny XLM-SWCM that never ends early and prefers a Uyghur piece: outputs are non-empty and in Arabic script."""
    torch.manual_seed(0)
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    with torch.no_grad():
        model.lm_head.bias[model.config.eos_token_id] = -1e4
        model.lm_head.bias[tokenizer.convert_tokens_to_ids(UYGHUR_PIECE)] = 1e3
    path = tmp_path_factory.mktemp("served")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def generator(model_dir):
    return Generator.load(
        model_dir, ServeLimits(max_queue=4, max_chars=200, max_new_tokens=16, max_beams=4, max_source_tokens=24)
    )


@pytest.fixture(scope="module")
def client(generator):
    with TestClient(create_app(generator)) as c:
        yield c


def test_health_and_info(client):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/info").json()
    assert info["layout"] == "C C C N C"  # 4 encoder layers, a normal layer after every 3 custom ones
    assert set(info["languages"]) == {"bo", "ug", "kk", "mn", "zh"}
    assert info["parameters"]["total"] > 0 and info["limits"]["max_queue"] == 4


def test_generate_reports_output_time_and_script(client):
    body = {"task": "translation", "text": "你好世界", "tgt_lang": "ug", "num_beams": 2, "max_new_tokens": 6}
    answer = client.post("/generate", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["output"] and data["seconds"] > 0 and data["in_target_script"] is True
    assert data["target_script_share"] == 1.0 and not data["truncated"]
    # the same output is not in Tibetan script: asked for Tibetan, the check says so
    data = client.post("/generate", json={**body, "tgt_lang": "bo"}).json()
    assert data["output"] and data["in_target_script"] is False


def test_constrained_generation_stays_in_script(client):
    # the model prefers a Uyghur piece; constrained to Tibetan script it must not write it
    body = {"text": "你好", "tgt_lang": "bo", "num_beams": 1, "max_new_tokens": 5, "constrain_script": True}
    data = client.post("/generate", json=body).json()
    assert data["output"] and UYGHUR_PIECE[1] not in data["output"]


def test_long_text_is_cut_and_says_so(client):
    body = {"text": "中文你好世界" * 20, "tgt_lang": "ug", "num_beams": 1, "max_new_tokens": 2}
    data = client.post("/generate", json=body).json()
    assert data["truncated"] is True and data["input_tokens"] == 24


def test_mrc_cuts_the_passage_only(client):
    body = {"task": "mrc", "question": "新闻", "context": "中文你好世界" * 30, "tgt_lang": "zh", "max_new_tokens": 4}
    data = client.post("/generate", json=body).json()
    assert data["truncated"] is True and data["input_tokens"] <= 24


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"text": "你好", "tgt_lang": "xx"}, 422, "tgt_lang: unknown language 'xx'"),
        ({"text": "   ", "tgt_lang": "ug"}, 422, "text: empty"),
        (
            b'{"text": "\\u4f60\\ud800", "tgt_lang": "ug"}',
            422,
            "text: not valid Unicode (a lone surrogate at character 1)",
        ),
        ({"tgt_lang": "ug"}, 422, "text: empty"),
        ({"text": "你" * 201, "tgt_lang": "ug"}, 413, "text: 201 characters, over the limit of 200"),
        ({"text": "你好", "tgt_lang": "ug", "num_beams": 5}, 422, "num_beams: 5 is over the limit of 4"),
        ({"text": "你好", "tgt_lang": "ug", "max_new_tokens": 17}, 422, "max_new_tokens: 17 is over"),
        ({"text": "你好", "tgt_lang": "ug", "num_beams": 0}, 422, "num_beams: Input should be greater than"),
        ({"text": "你好"}, 422, "tgt_lang: Field required"),
        ({"task": "poetry", "text": "你好", "tgt_lang": "ug"}, 422, "task: Input should be"),
        ({"task": "mrc", "question": "新闻", "tgt_lang": "ug"}, 422, "context: empty"),
        ({"task": "mrc", "question": "新" * 40, "context": "你好", "tgt_lang": "ug"}, 413, "the question alone is"),
    ],
)
def test_bad_requests_get_a_4xx_that_names_the_field(client, body, status, message):
    if isinstance(body, bytes):  # JSON that Python's own encoder would not write
        answer = client.post("/generate", content=body, headers={"Content-Type": "application/json"})
    else:
        answer = client.post("/generate", json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]


def test_demo_page_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="tgt_lang"' in page.text and "writing-mode: vertical-lr" in page.text


# ------------------------------------------------------------------------------------------- a real server


@contextmanager
def running_server(app, **config):
    """uvicorn on a free loopback port, in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def post(url: str, body: dict, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + "/generate", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class BlockingGenerator(Generator):
    """Holds every generation until released: shows what the queue does while the worker is busy."""

    release = threading.Event()
    calls = 0

    def generate(self, request):
        type(self).calls += 1
        self.release.wait(30)
        return super().generate(request)


def health(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url + "/health").read())


def test_a_request_whose_client_left_is_dropped_from_the_queue(model_dir):
    """A client that gives up no longer holds a place: its waiting request is dropped and never generated."""

    class Blocking(BlockingGenerator):
        release = threading.Event()
        calls = 0

    generator = Blocking.load(model_dir, ServeLimits(max_queue=2, max_new_tokens=8))
    body = {"text": "你好", "tgt_lang": "ug", "num_beams": 1, "max_new_tokens": 4}
    with running_server(create_app(generator)) as url, ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, url, body)
        while health(url)["queue"] < 1:
            time.sleep(0.02)
        with pytest.raises(OSError):  # (a timeout) the client gives up and closes its connection
            post(url, body, timeout=0.5)
        deadline = time.time() + 10
        while health(url)["dropped"] < 1:
            assert time.time() < deadline, "the request of the client that left was not dropped"
            time.sleep(0.05)
        assert health(url)["queue"] == 1, "its place in the queue is free again"
        generator.release.set()
        assert running.result()[0] == 200
        assert Blocking.calls == 1, "the dropped request was never generated"


def test_headers_that_trickle_in_are_cut_off(model_dir):
    """slow-loris: a connection whose request headers do not arrive within the deadline is closed; one that sends
    them in time is served, also for a second request on the same connection."""
    from swcm.serving import header_deadline_protocol

    generator = Generator.load(model_dir, ServeLimits(max_new_tokens=8))
    with running_server(create_app(generator), http=header_deadline_protocol(0.5)) as url:
        port = int(url.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and the rest never comes
        slow.settimeout(5)
        started = time.perf_counter()
        assert slow.recv(100) == b"", "the server closed the connection"
        assert 0.4 < time.perf_counter() - started < 3
        slow.close()
        import http.client

        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(2):  # the same connection (keep-alive), each request's headers in time
            kept.request("GET", "/health")
            answer = kept.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["status"] == "ok"
            time.sleep(0.3)
        kept.close()


def test_a_full_queue_answers_503_at_once(model_dir):
    limits = ServeLimits(max_queue=2, max_new_tokens=8)
    generator = BlockingGenerator.load(model_dir, limits)
    body = {"text": "你好", "tgt_lang": "ug", "num_beams": 1, "max_new_tokens": 4}
    with running_server(create_app(generator)) as url, ThreadPoolExecutor(4) as pool:
        admitted = [pool.submit(post, url, body) for _ in range(2)]
        deadline = time.time() + 10
        while json.loads(urllib.request.urlopen(url + "/health").read())["queue"] < 2:
            assert time.time() < deadline, "the two requests were not admitted"
            time.sleep(0.02)
        started = time.perf_counter()
        status, data = post(url, body)
        assert status == 503 and "limit 2" in data["detail"]
        assert time.perf_counter() - started < 2  # refused at once, not after waiting
        generator.release.set()
        assert [f.result()[0] for f in admitted] == [200, 200]
        health = json.loads(urllib.request.urlopen(url + "/health").read())
        assert health["queue"] == 0 and health["served"] == 2 and health["rejected"] == 1


@pytest.mark.parametrize("max_queue", [8, 2])
def test_loopback_load_200_requests_8_concurrent(model_dir, max_queue):
    """200 requests from 8 clients: with room for all 8 every request is served; with room for 2 the rest get 503
    at once, and nothing fails any other way. Afterwards the server is idle and serves again."""
    generator = Generator.load(model_dir, ServeLimits(max_queue=max_queue, max_new_tokens=8, max_beams=2))
    bodies = [
        {
            "text": f"你好世界 {i}",
            "tgt_lang": ["ug", "kk", "mn", "bo", "zh"][i % 5],
            "num_beams": 1 + i % 2,
            "max_new_tokens": 8,
        }
        for i in range(200)
    ]
    with running_server(create_app(generator)) as url:
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda b: post(url, b), bodies))
        seconds = time.perf_counter() - started
        statuses = [s for s, _ in results]
        ok = statuses.count(200)
        print(f"max_queue {max_queue}: {ok} served, {200 - ok} refused (503) in {seconds:.1f} s")
        assert set(statuses) <= {200, 503}, sorted(set(statuses))
        assert all(d["output"] for s, d in results if s == 200)
        if max_queue >= 8:
            assert ok == 200
        else:
            assert 0 < ok < 200 and all("busy" in d["detail"] for s, d in results if s == 503)
        health = json.loads(urllib.request.urlopen(url + "/health").read())
        assert health["queue"] == 0 and health["served"] == ok and health["rejected"] == 200 - ok
        assert post(url, bodies[0])[0] == 200


# ------------------------------------------------------------------------------------------ headless Chromium

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them: apt-get install chromium "
    "chromium-driver)",
)
def test_demo_page_end_to_end_in_headless_chromium(model_dir, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    generator = Generator.load(model_dir, ServeLimits(max_new_tokens=16))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The environment's flags: no sandbox as root, and no background connections to a closed network.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user_data_dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    with running_server(create_app(generator)) as url:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.get(url + "/")
            wait = WebDriverWait(driver, 30)
            wait.until(lambda d: len(Select(d.find_element(By.ID, "tgt_lang")).options) == 5)
            Select(driver.find_element(By.ID, "tgt_lang")).select_by_value("ug")
            driver.find_element(By.ID, "num_beams").clear()
            driver.find_element(By.ID, "num_beams").send_keys("1")
            driver.find_element(By.ID, "max_new_tokens").clear()
            driver.find_element(By.ID, "max_new_tokens").send_keys("6")
            driver.find_element(By.ID, "text").send_keys("你好世界")
            driver.find_element(By.ID, "submit").click()
            wait.until(lambda d: d.find_element(By.ID, "output").get_attribute("data-done") == "1")
            output = driver.find_element(By.ID, "output")
            assert output.text.strip() and UYGHUR_PIECE[1] in output.text
            assert output.get_attribute("dir") == "rtl" and output.get_attribute("lang") == "ug"
            assert "in the target script" in driver.find_element(By.ID, "meta").text
            # a bad request shows the server's message instead of an output
            driver.find_element(By.ID, "text").clear()
            driver.find_element(By.ID, "submit").click()
            wait.until(lambda d: "422" in d.find_element(By.ID, "output").text)
            assert "text: empty" in driver.find_element(By.ID, "output").text
        finally:
            driver.quit()


def test_cli_serve_refuses_what_is_not_an_swcm_model(tiny_xlmr, tmp_path, capsys):
    from swcm.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert "missing: no such model folder" in capsys.readouterr().err
    assert main(["serve", "--model", str(tiny_xlmr)]) == 2
    assert "not an XLM-SWCM model (model_type 'xlm-roberta')" in capsys.readouterr().err


def test_limits_follow_the_model_and_no_request_within_them_fails(model_dir):
    """The tiny model has 66 positions: 64 decoder tokens (start and tag + 63 new), fewer than the default 256."""
    generator = Generator.load(model_dir, ServeLimits())
    with TestClient(create_app(generator)) as client:
        limits = client.get("/info").json()["limits"]
        assert limits["max_new_tokens"] == 63 and limits["max_source_tokens"] == 64
        assert generator.clamped == [
            "max_new_tokens 256 -> 63 (the model's position table)",
            "max_source_tokens 256 -> 64 (the model's position table)",
        ]
        body = {"task": "translation", "text": "你好，世界", "tgt_lang": "ug"}
        assert client.post("/generate", json=body).status_code == 200  # was a bare 500
        longest = {**body, "text": "你好，世界 " * 100, "max_new_tokens": 63, "num_beams": 2}
        response = client.post("/generate", json=longest)
        assert response.status_code == 200 and response.json()["truncated"] is True
        over = client.post("/generate", json={**body, "max_new_tokens": 64})
        assert over.status_code == 422 and "over the limit of 63" in over.json()["detail"]


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(client):
    """Declared (Content-Length) or streamed (chunked): 413 at the limit the fields need, never parsed whole."""
    filler = {"text": "你好", "tgt_lang": "ug", "ignored": "x" * 100_000}
    answer = client.post("/generate", json=filler)
    assert answer.status_code == 413 and answer.json()["detail"] == "request body over the limit of 18784 bytes"

    def chunks():
        yield b'{"text": "\\u4f60", "tgt_lang": "ug", "ignored": "'
        for _ in range(40):
            yield b"x" * 1000
        yield b'"}'

    streamed = client.post("/generate", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert client.post("/generate", json={"text": "你" * 200, "tgt_lang": "ug"}).status_code == 200


def test_the_port_is_bound_before_the_model_loads_and_port_0_names_the_real_one():
    from swcm.errors import DataError
    from swcm.serving import listening_socket

    taken = listening_socket("127.0.0.1", 0)
    taken.listen()
    port = taken.getsockname()[1]
    assert port > 0
    with pytest.raises(DataError, match=f"port: cannot listen on 127.0.0.1:{port} \\(Address already in use\\)"):
        listening_socket("127.0.0.1", port)
    taken.close()
