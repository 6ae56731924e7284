"""The service's pure parts: wire formats, dtype encodings, the batcher and the key rules (no model, no socket)."""

from __future__ import annotations

import asyncio
import base64
import threading
import time

import numpy as np
import pytest

from leaf_mongo.errors import SettingsError
from leaf_mongo.serve import openai_format, voyage
from leaf_mongo.serve.auth import AuthError, Keys, is_loopback, read_key_file, require_key_off_loopback
from leaf_mongo.serve.batcher import Batcher, DeadlineExceeded, QueueFull
from leaf_mongo.serve.wire import Limits, WireError, decode_json, output_vectors
from leaf_mongo.spec import VectorSpec

LIMITS = Limits(full_dimensions=32, default_dimensions=32, max_inputs=5)
MODELS = frozenset(voyage.DEFAULT_VOYAGE_MODELS)
SPEC = VectorSpec(teacher_model="t", leaf_model="l", full_dimensions=32, dimensions=32, int8_min=-0.3, int8_max=0.3)


def mongot_body(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "input_type": "document", "model": "voyage-4", "input": ["a", "b"], "encoding_format": "base64",
        "truncation": True, "output_dimension": 16, "output_dtype": "int8",
    }  # fmt: skip
    return body | over


def test_voyage_request_as_mongot_sends_it() -> None:
    job = voyage.parse_request(mongot_body(service_tier="flex", metadata={"database": "x"}), MODELS, LIMITS)
    assert (job.side, job.texts, job.dimensions, job.dtype, job.truncate, job.base64) == (
        "document", ["a", "b"], 16, "int8", True, True,
    )  # fmt: skip
    assert voyage.parse_request(mongot_body(model="VOYAGE-4-LITE"), MODELS, LIMITS).model == "VOYAGE-4-LITE"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"model": "voyage-code-3"}, "voyage-code-3' is not served"),
        ({"input_type": None}, "input_type is required"),
        ({"input_type": "passage"}, "input_type: Input should be 'query' or 'document'"),
        ({"input": []}, "input is empty"),
        ({"input": ["a", ""]}, "input[1] is an empty string"),
        ({"input": ["a"] * 6}, "at most 5 per request"),
        ({"input": ["a", 3]}, "input[1]: Input should be a valid string"),
        ({"output_dimension": 33}, "output_dimension=33 is not possible"),
        ({"output_dimension": 0}, "must be 1..32"),
        ({"output_dimension": 12, "output_dtype": "binary"}, "bits pack 8 per byte"),
        ({"output_dtype": "uint8"}, "output_dtype"),
    ],
)
def test_voyage_refusals_are_one_clear_message(over: dict[str, object], message: str) -> None:
    with pytest.raises(WireError) as err:
        voyage.parse_request(mongot_body(**over), MODELS, LIMITS)
    assert message in err.value.message


def test_decode_json_ignores_content_type_but_not_garbage() -> None:
    assert decode_json(b'{"a": 1}') == {"a": 1}
    for raw, message in ((b"", "empty"), (b"{", "not valid JSON"), (b"[1]", "JSON object"), (b"\xff", "not valid")):
        with pytest.raises(WireError, match=message):
            decode_json(raw)


def test_document_refusals_are_422_for_mongot() -> None:
    """mongot stores a document batch answered 400 without vectors; 422 makes it retry instead."""
    assert voyage.error_status("document", "unknown", 400) == 422
    assert voyage.error_status(None, "document", 400) == 422
    assert voyage.error_status("query", "query", 400) == 400
    assert voyage.error_status("document", "document", 413) == 413


def test_voyage_response_decodes_as_mongot_decodes_it() -> None:
    """float: little-endian float32 in standard base64 (mongot's sample: [1.0, 2.0, 3.0] = "AACAPwAAAEAAAEBA")."""
    job = voyage.parse_request(mongot_body(input=["x"], output_dtype="float", output_dimension=3), MODELS, LIMITS)
    body = voyage.encode_response(job, np.array([[1.0, 2.0, 3.0]], dtype="<f4"), 7)
    assert body == {
        "object": "list", "data": [{"object": "embedding", "embedding": "AACAPwAAAEAAAEBA", "index": 0}],
        "model": "voyage-4", "usage": {"total_tokens": 7},
    }  # fmt: skip


def test_dtypes_match_sentence_transformers_quantization() -> None:
    from sentence_transformers.util.quantization import quantize_embeddings

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ranges = np.array([[-0.3] * 16, [0.3] * 16], dtype=np.float32)
    np.testing.assert_array_equal(output_vectors(emb, "int8", SPEC), quantize_embeddings(emb, "int8", ranges=ranges))
    np.testing.assert_array_equal(output_vectors(emb, "binary", SPEC), quantize_embeddings(emb, "binary"))
    np.testing.assert_array_equal(output_vectors(emb, "ubinary", SPEC), quantize_embeddings(emb, "ubinary"))
    assert output_vectors(emb, "float", SPEC).dtype == np.dtype("<f4")
    assert output_vectors(emb, "binary", SPEC).dtype == np.int8  # offset binary: unsigned - 128


def test_openai_request_and_response() -> None:
    job = openai_format.parse_request({"model": "leaf-query", "input": "hi", "dimensions": 8}, LIMITS)
    assert (job.side, job.texts, job.dimensions, job.base64) == ("query", ["hi"], 8, False)
    job = openai_format.parse_request({"model": "leaf-document", "input": ["a"], "encoding_format": "base64"}, LIMITS)
    body = openai_format.encode_response(job, np.array([[0.5, -1.0]], dtype=np.float32), 3)
    assert np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4").tolist() == [0.5, -1.0]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    for bad, message in (
        ({"model": "gpt", "input": "x"}, "leaf-query"),
        ({"model": "leaf-query", "input": [1, 2]}, "token ids"),
    ):
        with pytest.raises(WireError, match=message):
            openai_format.parse_request(bad, LIMITS)


def test_keys_scopes_and_loopback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = Keys(indexing=b"idx", query=b"qry")
    assert keys.scopes("Bearer idx") == {"query", "document"}
    assert keys.scopes("bearer qry") == {"query"}
    for header, status in ((None, 401), ("Bearer nope", 401), ("Basic idx", 401)):
        with pytest.raises(AuthError) as err:
            keys.scopes(header)
        assert err.value.status == status and "idx" not in err.value.message
    with pytest.raises(AuthError) as err:
        keys.require(keys.scopes("Bearer qry"), "document")
    assert err.value.status == 403
    assert Keys().scopes(None) == {"query", "document"}
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(SettingsError, match="without an API key"):
        require_key_off_loopback("0.0.0.0", Keys())
    require_key_off_loopback("0.0.0.0", keys)
    loose = tmp_path / "k"
    loose.write_text("secret\n")
    loose.chmod(0o644)
    with pytest.raises(SettingsError, match="owner-only"):
        read_key_file(loose, "X")
    loose.chmod(0o600)
    assert read_key_file(loose, "X") == b"secret"


class SlowEncoder:
    """Records each model batch; takes ``delay`` seconds per batch."""

    def __init__(self, delay: float = 0.05) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        time.sleep(self.delay)
        return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)], dtype=np.float32)


async def test_batcher_coalesces_concurrent_requests_and_keeps_order() -> None:
    enc = SlowEncoder()
    b = Batcher(enc, max_batch_texts=64, max_batch_tokens=10**6, max_queued=100)
    b.start()
    first = asyncio.create_task(b.submit(["a"], [1], 5))
    await asyncio.sleep(0.01)  # the first batch is running: the next requests queue up together
    rest = [asyncio.create_task(b.submit(["bb" * i, "c"], [i, 1], 5)) for i in range(1, 6)]
    results = await asyncio.gather(first, *rest)
    await b.stop()
    assert [len(x) for x in enc.batches] == [1, 10]
    for i, res in enumerate(results[1:], 1):
        assert res[:, 0].tolist() == [2.0 * i, 1.0]  # rows in each request's input order


async def test_batcher_length_sorted_token_budget() -> None:
    enc = SlowEncoder(0.0)
    b = Batcher(enc, max_batch_texts=64, max_batch_tokens=100, max_queued=100)
    b.start()
    texts = ["x" * n for n in (10, 50, 20, 40)]
    out = await b.submit(texts, [10, 50, 20, 40], 5)
    await b.stop()
    assert enc.batches == [["x" * 50, "x" * 40], ["x" * 20, "x" * 10]]  # longest first, 50 x 2 <= 100 tokens
    assert out[:, 0].tolist() == [10.0, 50.0, 20.0, 40.0]


@pytest.mark.parametrize("grouped", [False, True])
async def test_batcher_groups_concurrent_requests_by_length(grouped: bool) -> None:
    enc = SlowEncoder(0.05)
    b = Batcher(enc, max_batch_texts=2, max_batch_tokens=10**6, max_queued=100, group_by_length=grouped)
    b.start()
    first = asyncio.create_task(b.submit(["x" * 90, "x" * 10, "x" * 30], [90, 10, 30], 5))
    second = asyncio.create_task(b.submit(["x" * 80, "x" * 20, "x" * 70], [80, 20, 70], 5))
    one, two = await asyncio.gather(first, second)
    await b.stop()
    widths = [sorted((len(t) for t in batch), reverse=True) for batch in enc.batches]
    if grouped:  # as if one request of six: 90+80, 70+30, 20+10 (padded to 90, 70, 20)
        assert widths == [[90, 80], [70, 30], [20, 10]]
    else:  # first come, first served: the first request's shortest text rides with the second's longest
        assert widths == [[90, 30], [80, 10], [70, 20]]
    assert one[:, 0].tolist() == [90.0, 10.0, 30.0] and two[:, 0].tolist() == [80.0, 20.0, 70.0]


async def test_grouped_batcher_never_leaves_the_oldest_piece_behind() -> None:
    enc = SlowEncoder(0.05)
    b = Batcher(enc, max_batch_texts=8, max_batch_tokens=100, max_queued=100, group_by_length=True)
    b.start()
    first = asyncio.create_task(b.submit(["x" * 5], [5], 5))
    await asyncio.sleep(0.01)  # running; the next two requests queue up
    short = asyncio.create_task(b.submit(["x" * 10, "x" * 12], [10, 12], 5))
    long = asyncio.create_task(b.submit(["x" * 40, "x" * 30, "x" * 11, "x" * 35], [40, 30, 11, 35], 5))
    await asyncio.gather(first, short, long)
    await b.stop()
    # the oldest queued piece (12) leaves first, with the longest (40; 40 x 3 > 100 tokens); then 10 + 35 by the
    # same rule; then 30 + 11 (30 x 3 would fit, but only two are left)
    assert [sorted(len(t) for t in batch) for batch in enc.batches] == [[5], [12, 40], [10, 35], [11, 30]]


async def test_a_lone_query_is_encoded_inline_only_while_the_model_is_free() -> None:
    enc = SlowEncoder(0.05)
    threads: list[str] = []
    free = threading.Event()
    free.set()

    def now(texts: list[str]) -> np.ndarray | None:
        if not free.is_set():  # the model is busy elsewhere (shared with the other side): do not block the loop
            return None
        threads.append(threading.current_thread().name)
        return enc(texts)

    b = Batcher(enc, max_batch_texts=8, max_batch_tokens=10**6, max_queued=100, encode_now=now, name="q")
    b.start()
    assert (await b.submit(["a"], [1], 5)).shape == (1, 2)  # idle: inline, on this (the event loop's) thread
    assert threads == [threading.current_thread().name]
    free.clear()
    assert (await b.submit(["b"], [1], 5)).shape == (1, 2)  # model busy elsewhere: queued, the worker encodes
    free.set()
    running = asyncio.create_task(b.submit(["c", "d"], [1, 1], 5))  # two texts: never inline
    await asyncio.sleep(0.01)
    queued = await b.submit(["e"], [1], 5)  # a batch is running: queued behind it, not inline
    await running
    assert queued.shape == (1, 2) and len(threads) == 1
    await b.submit(["f", "g"], [1, 1], 5)
    await b.submit(["h"], [1], 5)  # the last batch had two texts (load): batched by the worker
    assert len(threads) == 1
    await b.submit(["i"], [1], 5)  # the last batch was a lone text: inline again
    await b.stop()
    assert len(threads) == 2
    assert enc.batches == [["a"], ["b"], ["c", "d"], ["e"], ["f", "g"], ["h"], ["i"]]


async def test_batcher_back_pressure_and_deadlines() -> None:
    enc = SlowEncoder(0.3)
    b = Batcher(enc, max_batch_texts=1, max_batch_tokens=10**6, max_queued=2)
    b.start()
    running = asyncio.create_task(b.submit(["a"], [1], 5))
    await asyncio.sleep(0.05)
    late = asyncio.create_task(b.submit(["b", "c"], [1, 1], 0.1))  # queued behind a 0.3 s batch
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await b.submit(["d"], [1], 5)
    with pytest.raises(DeadlineExceeded):
        await late
    assert (await running).shape == (1, 2)
    await asyncio.sleep(0.4)
    await b.stop()
    assert enc.batches == [["a"]]  # the expired request was never encoded


def test_every_serve_setting_is_documented() -> None:
    from pathlib import Path

    from leaf_mongo.serve.config import ServeSettings

    text = (Path(__file__).resolve().parent.parent / "docs" / "serve.md").read_text()
    missing = [f"LEAF_MONGO_SERVE_{f.upper()}" for f in ServeSettings.model_fields]
    assert [m for m in missing if m not in text] == []
