"""`swcm serve`: an HTTP API (FastAPI) and a one-page demo for translation, summarization and reading comprehension.

Generation runs on one worker thread, off the event loop; at most `max_queue` requests are admitted at once (running
or waiting), and any beyond that get 503 with Retry-After at once, so a burst cannot pile up work or memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from transformers import LogitsProcessorList

from .arguments import DEFAULT_BEAMS, ServeArgs, ServeLimits
from .choices import TASK_NAMES, Task
from .configuration_swcm import layout_string
from .errors import DataError
from .generation import (
    ScriptConstraint,
    allowed_tokens,
    new_token_limit,
    prepare_for_inference,
    source_batches,
    source_token_limit,
)
from .languages import LANGUAGE_NAMES, LANGUAGE_SCRIPTS
from .metrics import target_script_share
from .modeling_swcm import load_model_folder
from .paths import check_model_dir
from .tasks import TaskExample, mrc_sources


def model_limits(limits: ServeLimits, model, tokenizer) -> tuple[ServeLimits, list[str]]:
    """`limits` within what the model can do (its decoder and encoder position tables), and what was lowered: the
    limits the server advertises are the ones it can honour, so no request within them fails."""
    bounds = {"max_new_tokens": new_token_limit(model), "max_source_tokens": source_token_limit(model, tokenizer)}
    lowered = {k: v for k, v in bounds.items() if getattr(limits, k) > v}
    notes = [f"{k} {getattr(limits, k)} -> {v} (the model's position table)" for k, v in lowered.items()]
    return dataclasses.replace(limits, **lowered), notes


class GenerateRequest(BaseModel):
    task: Task = "translation"
    text: str | None = Field(default=None, description="translation / summarization: the input text")
    question: str | None = Field(default=None, description="mrc: the question")
    context: str | None = Field(default=None, description="mrc: the passage")
    tgt_lang: str = Field(description="target language code: bo, ug, kk, mn, zh")
    num_beams: int | None = Field(
        default=None, ge=1, description=f"default: {DEFAULT_BEAMS} (as swcm generate), or the server's limit if lower"
    )
    max_new_tokens: int | None = Field(default=None, ge=1, description="default: 128, or the server's limit if lower")
    constrain_script: bool = Field(default=False, description="only allow tokens of the target language's script")


class GenerateResponse(BaseModel):
    output: str
    task: str
    tgt_lang: str
    seconds: float
    in_target_script: bool
    target_script_share: float | None
    input_tokens: int
    truncated: bool


class Generator:
    """The model, its tokenizer and the per-language script masks; the app calls it from one worker thread."""

    def __init__(self, model, tokenizer, limits: ServeLimits, model_dir: str = ""):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.limits, self.clamped = model_limits(limits, model, tokenizer)
        self.model_dir = model_dir
        self.inference = "as loaded"
        """What prepare_for_inference chose (precision / quantization), shown by /info."""
        self.languages = sorted(set(model.config.lang_tag_ids) & set(LANGUAGE_SCRIPTS))
        self._allowed: dict[str, torch.Tensor] = {}

    @classmethod
    def load(
        cls, model_dir: str | Path, limits: ServeLimits, precision: str = "auto", quantize: str = "auto"
    ) -> Generator:
        from transformers import AutoTokenizer

        path = Path(model_dir)
        check_model_dir(path)
        # one request at a time, at the default beam: the rows of a step
        model, how = prepare_for_inference(load_model_folder(path), precision, quantize, DEFAULT_BEAMS)
        generator = cls(model, AutoTokenizer.from_pretrained(path), limits, str(path))
        generator.inference = how
        return generator

    def info(self) -> dict:
        counts = self.model.parameter_counts()
        return {
            "model": self.model_dir,
            "layout": layout_string(self.model.config.decoder_layer_types),
            "decoder_layers": len(self.model.config.decoder_layer_types),
            "languages": {code: LANGUAGE_NAMES.get(code, code) for code in self.languages},
            "parameters": counts,
            "vocab_size": self.model.config.vocab_size,
            "tasks": list(TASK_NAMES),
            "limits": vars(self.limits),
            "inference": self.inference,
        }

    def allowed(self, lang: str) -> torch.Tensor:
        """The script constraint's token mask for `lang` (DataError: the vocabulary has none of its script)."""
        if lang not in self._allowed:
            config = self.model.config
            self._allowed[lang] = allowed_tokens(self.tokenizer, lang, config.vocab_size, config.lang_tag_ids)
        return self._allowed[lang]

    def source(self, request: GenerateRequest) -> tuple[str, bool]:
        if request.task == "mrc":
            example = TaskExample(request.question, [], "request", question=request.question, context=request.context)
            sources, cut = mrc_sources(self.tokenizer, [example], self.limits.max_source_tokens)
            return sources[0], bool(cut)
        return request.text, False

    def generate(self, request: GenerateRequest) -> GenerateResponse:
        started = time.perf_counter()
        source, truncated = self.source(request)
        limit = self.limits.max_source_tokens
        ((_, batch, cut),) = source_batches(self.tokenizer, [source], 1, limit, self.model.device)
        truncated = truncated or bool(cut)
        processors = None
        if request.constrain_script:
            processors = LogitsProcessorList([ScriptConstraint(self.allowed(request.tgt_lang))])
        with torch.inference_mode():
            ids = self.model.generate(
                **batch,
                tgt_lang=request.tgt_lang,
                num_beams=request.num_beams,
                max_new_tokens=request.max_new_tokens,
                logits_processor=processors,
                do_sample=False,
            )
        output = self.tokenizer.decode(ids[0], skip_special_tokens=True).strip()
        share = target_script_share(output, request.tgt_lang)
        return GenerateResponse(
            output=output,
            task=request.task,
            tgt_lang=request.tgt_lang,
            seconds=time.perf_counter() - started,
            in_target_script=share is not None and share >= 0.5,
            target_script_share=share,
            input_tokens=int(batch["input_ids"].shape[1]),
            truncated=truncated,
        )


def validate(request: GenerateRequest, generator: Generator) -> None:
    """Reject what the model cannot do or the limits do not allow, with a message that names the field; fill in
    the default beams and length within the limits."""
    limits = generator.limits
    if request.tgt_lang not in generator.languages:
        raise HTTPException(
            422, f"tgt_lang: unknown language {request.tgt_lang!r}; this model has {', '.join(generator.languages)}"
        )
    fields = ("question", "context") if request.task == "mrc" else ("text",)
    for name in fields:
        value = getattr(request, name)
        if value is None or not value.strip():
            raise HTTPException(422, f"{name}: empty; task {request.task} needs {' and '.join(fields)}")
        if len(value) > limits.max_chars:
            raise HTTPException(413, f"{name}: {len(value)} characters, over the limit of {limits.max_chars}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:  # JSON allows "\ud800"; text cannot hold it
            raise HTTPException(422, f"{name}: not valid Unicode (a lone surrogate at character {err.start})") from None
    if request.constrain_script:
        try:
            generator.allowed(request.tgt_lang)
        except DataError as err:
            raise HTTPException(422, str(err)) from None
    if request.num_beams is None:
        request.num_beams = min(DEFAULT_BEAMS, limits.max_beams)
    if request.max_new_tokens is None:
        request.max_new_tokens = min(128, limits.max_new_tokens)
    if request.num_beams > limits.max_beams:
        raise HTTPException(422, f"num_beams: {request.num_beams} is over the limit of {limits.max_beams}")
    if request.max_new_tokens > limits.max_new_tokens:
        raise HTTPException(
            422, f"max_new_tokens: {request.max_new_tokens} is over the limit of {limits.max_new_tokens}"
        )


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before it is parsed: by its Content-Length,
    or, without one (chunked), as soon as what arrived passes the limit; so the queue limit cannot be outrun by large
    bodies, and no more than the limit is ever held."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                return await self._too_large(send)
            return await self.app(scope, receive, send)
        messages, size = [], 0
        while True:  # chunked: read it here, up to the limit, then hand it on
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._too_large(send)
            if not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send):
        body = json.dumps({"detail": f"request body over the limit of {self.max_bytes} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def max_body_bytes(limits: ServeLimits) -> int:
    """The largest request body the limits can need: question and passage of max_chars each, every character a
    6-byte JSON escape (\\uXXXX), and 16 KiB for the other fields."""
    return 2 * 6 * limits.max_chars + 16384


def create_app(generator: Generator) -> FastAPI:
    app = FastAPI(title="swcm", description="XLM-SWCM generation for bo / ug / kk / mn / zh")
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes(generator.limits))
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="swcm-generate")
    state = {"admitted": 0, "served": 0, "rejected": 0, "dropped": 0}

    def release() -> None:  # a slot is free once its job has run, or was cancelled before it ran
        state["admitted"] -= 1

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, err: RequestValidationError):
        # One line per problem: "field: message", as the other 4xx answers.
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in err.errors()]
        return JSONResponse(status_code=422, content={"detail": "; ".join(problems)})

    @app.get("/", response_class=HTMLResponse)
    async def demo() -> str:
        return resources.files("swcm").joinpath("static/demo.html").read_text(encoding="utf-8")

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "queue": state["admitted"],
            "max_queue": generator.limits.max_queue,
            "served": state["served"],
            "rejected": state["rejected"],
            "dropped": state["dropped"],
        }

    @app.get("/info")
    async def info() -> dict:
        return generator.info()

    @app.post("/generate", response_model=GenerateResponse)
    async def generate(request: GenerateRequest, http: Request):
        validate(request, generator)
        # Admission is decided on the event loop thread, so the counter needs no lock.
        if state["admitted"] >= generator.limits.max_queue:
            state["rejected"] += 1
            return JSONResponse(
                status_code=503,
                content={"detail": f"busy: {state['admitted']} requests queued (limit {generator.limits.max_queue})"},
                headers={"Retry-After": "1"},
            )
        state["admitted"] += 1
        loop = asyncio.get_running_loop()
        work = executor.submit(generator.generate, request)
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(release))
        job = asyncio.wrap_future(work)
        leaving = asyncio.ensure_future(_client_left(http))
        await asyncio.wait({job, leaving}, return_when=asyncio.FIRST_COMPLETED)
        leaving.cancel()
        if not job.done():  # the client left: a job still waiting never runs; one running ends unread
            work.cancel()
            job.add_done_callback(lambda f: f.cancelled() or f.exception())
            state["dropped"] += 1
            return JSONResponse(status_code=499, content={"detail": "the client closed the connection"})
        try:
            response = job.result()
        except DataError as err:  # e.g. a question that alone is longer than max_source_tokens
            raise HTTPException(413, str(err)) from None
        state["served"] += 1
        return response

    app.router.on_shutdown.append(lambda: executor.shutdown(wait=False, cancel_futures=True))
    return app


async def _client_left(http: Request, every: float = 0.1) -> None:
    """Returns once the client has closed its connection (a request waiting in the queue is then dropped)."""
    while not await http.is_disconnected():
        await asyncio.sleep(every)


HEADER_TIMEOUT = 10.0
"""Seconds a client has to send a request's headers; a connection that trickles them (slow-loris) is closed."""


def header_deadline_protocol(timeout: float = HEADER_TIMEOUT) -> type:
    """uvicorn's h11 protocol with a deadline for each request's headers, which uvicorn itself lacks (its keep-alive
    timeout covers idle connections only): armed when a connection opens and after each response, met when the next
    request's headers are complete."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline = None

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a pipelined request already running: generation time is not a header deadline
            waiting_after = self.cycle  # a new request replaces the cycle: its headers arrived in time
            self._deadline = self.loop.call_later(timeout, self._too_slow, waiting_after)

        def _too_slow(self, waiting_after) -> None:
            if self.cycle is waiting_after and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

    return HeaderDeadline


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before the model loads: a port in use is one line at once (port 0: any free port,
    the one chosen is printed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise DataError(f"port: cannot listen on {host}:{port} ({err.strerror or err})") from None
    return sock


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServeLimits | None = None,
    precision: str = "auto",
    quantize: str = "auto",
) -> None:
    import uvicorn

    sock = listening_socket(host, port)
    generator = Generator.load(model_dir, limits or ServeLimits(), precision, quantize)
    bound = sock.getsockname()[1]
    print(
        f"swcm serve: {model_dir} ({generator.info()['layout']}; {generator.inference}) on http://{host}:{bound}/",
        flush=True,
    )
    if generator.clamped:
        print(f"swcm serve: limits lowered to the model: {'; '.join(generator.clamped)}", flush=True)
    # idle keep-alive connections close after 5 s, and headers must arrive within HEADER_TIMEOUT
    config = uvicorn.Config(
        create_app(generator), log_level="warning", timeout_keep_alive=5, http=header_deadline_protocol()
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve_command(args: ServeArgs) -> None:
    """`swcm serve`: serves args.model with the command's limits until stopped."""
    serve(args.model, args.host, args.port, args.limits(), args.precision, args.quantize)
