"""Fast CPU inference backends: one self-contained ONNX graph per model side, run by ONNX Runtime or OpenVINO.

Why not ``SentenceTransformer(backend="onnx")``: its export goes through optimum-onnx, which supports only
transformers < 4.58 while sentence-transformers >= 6 needs transformers 5, so the two cannot be installed
together; and it exports the Transformer alone, leaving pooling, the leaf's ``Dense`` 384 -> 768 projection and
``Normalize`` to torch (the published ``onnx/`` files of the LEAF repositories are transformer-only too, and
integrations that forget the projection get 384-d vectors in the wrong space). So leaf-mongo exports the *whole*
module stack of one route (Transformer, Pooling, Dense, Normalize), once, with ``torch.onnx.export``, caches it
on disk beside the tokenizer and the prompt sentence-transformers applies, and quantizes it with ONNX Runtime's
own dynamic quantization (or NNCF weight compression for OpenVINO). Running it needs only onnxruntime (or
openvino), ``tokenizers`` and numpy: a query path that never imports torch or transformers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from leaf_mongo.errors import ModelLoadError
from leaf_mongo.models.layout import Task
from leaf_mongo.models.loading import applied_prompt, embedding_dimension, load_model
from leaf_mongo.settings import Backend

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BACKENDS: tuple[str, ...] = tuple(b for b in get_args(Backend) if b != "auto")
AUTO_NEEDS = ("onnxruntime", "onnx", "tokenizers")
"""What ``auto`` needs installed to choose ``onnx`` (the ``onnx`` extra)."""


def resolve_backend(backend: str) -> str:
    """``auto`` is ``onnx`` where ONNX Runtime is installed (the same vectors as torch, cosine 1.0, about 2.4x faster
    at batch 1: benchmarks/README.md), else ``torch``; any other name is itself."""
    if backend != "auto":
        return backend
    return "onnx" if all(importlib.util.find_spec(m) is not None for m in AUTO_NEEDS) else "torch"


EXPORT_VERSION = 1
BACKENDS_DIR = Path("~/.cache/leaf-mongo/backends")
MANIFEST = "leaf_mongo_export.json"


def cpu_has_vnni() -> bool:
    """AVX-512 VNNI or AVX-VNNI: int8 dot products that do not saturate u8 x s8 accumulations."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _fingerprint(name: str) -> str:
    """Model identity for the export cache: the id, or a local folder's path and its files' mtimes."""
    path = Path(name).expanduser()
    if not path.is_dir():
        return name
    stamps = [f"{p.relative_to(path)}:{p.stat().st_mtime_ns}" for p in sorted(path.rglob("*.json"))]
    stamps += [f"{p.relative_to(path)}:{p.stat().st_mtime_ns}" for p in sorted(path.rglob("*.safetensors"))]
    return f"{path.resolve()}|{'|'.join(stamps)}"


def export_folder(name: str, task: Task, backend: str, root: Path | None = None) -> Path:
    """Where the exported graph of ``name``'s ``task`` route lives (one folder per model, route and backend)."""
    key = hashlib.sha256(f"{EXPORT_VERSION}\x00{_fingerprint(name)}\x00{task}\x00{backend}".encode()).hexdigest()
    label = Path(name).name or "model"
    root = root or Path(os.environ.get("LEAF_MONGO_BACKEND_CACHE") or BACKENDS_DIR)
    return root.expanduser() / f"{label}-{task}-{backend}-{key[:16]}"


def ensure_exported(name: str, task: Task, backend: str, root: Path | None = None) -> Path:
    """The exported folder, exporting now (once; a clear line on stderr) if it is not cached yet."""
    if backend not in BACKENDS or backend == "torch":
        raise ModelLoadError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    folder = export_folder(name, task, backend, root)
    if (folder / MANIFEST).is_file():
        return folder
    print(
        f"leaf-mongo: exporting {name!r} ({task} side) to {backend} once; cached in {folder}",
        file=sys.stderr,
        flush=True,
    )
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        _export(name, task, backend, tmp)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"could not export {name!r} to {backend}: {type(exc).__name__}: {exc}") from exc
    if folder.exists():  # another process won the race: keep its copy
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(folder)
    return folder


def _export(name: str, task: Task, backend: str, out: Path) -> None:
    """Write the route's graph, its tokenizer and the manifest that lets :class:`OnnxTextEncoder` run it."""
    model = load_model(name, "cpu", task=task)
    for module in model:
        if getattr(module, "include_prompt", True) is False:
            raise ModelLoadError(f"{name!r}: pooling that excludes prompt tokens cannot be exported; use backend torch")
    tokenizer = model.tokenizer
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    fp32 = out / "model.onnx"
    _export_float(model, inputs, fp32, name)
    graph = _compress(fp32, backend, out)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    manifest = {
        "version": EXPORT_VERSION,
        "model": name,
        "task": task,
        "backend": backend,
        "graph": graph,
        "inputs": inputs,
        "max_seq_length": int(model.max_seq_length or 512),
        "pad_id": int(pad_id),
        "pad_token": tokenizer.pad_token or "[PAD]",
        "dimension": embedding_dimension(model),
        "prompt": applied_prompt(model, task),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _export_float(model: SentenceTransformer, inputs: list[str], fp32: Path, name: str) -> None:
    """The whole module stack as one float32 ONNX graph, checked against torch before anything uses it."""
    import torch

    preprocess = getattr(model, "preprocess", None) or model.tokenize
    sample = preprocess(["an example sentence to trace the graph with", "short"])

    class Stack(torch.nn.Module):
        """The route's whole module stack as one graph: token ids in, the sentence embedding out."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(inputs, tensors, strict=True)))["sentence_embedding"]

    axes = {n: {0: "batch", 1: "sequence"} for n in inputs}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches: the graph is checked
        torch.onnx.export(
            Stack().eval(),
            tuple(sample[n] for n in inputs),
            str(fp32),
            input_names=inputs,
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    _check_export(fp32, Stack().eval(), {n: sample[n] for n in inputs}, name)


def _compress(fp32: Path, backend: str, out: Path) -> str:
    """Convert or quantize the float graph for ``backend`` (replacing it); returns the graph's file name."""
    if backend == "onnx-int8":
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Signed int8 weights per output channel; without VNNI, u8 x s8 products can saturate, and ONNX
        # Runtime's documented remedy is reduce_range (7-bit weights).
        quantize_dynamic(
            str(fp32),
            str(out / "model_int8.onnx"),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=not cpu_has_vnni(),
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        fp32.unlink()
        return "model_int8.onnx"
    if backend.startswith("openvino"):
        import openvino as ov

        ov_model = ov.convert_model(str(fp32))
        if backend == "openvino-int8":
            import nncf

            ov_model = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        ov.save_model(ov_model, str(out / "model.xml"))
        fp32.unlink()
        return "model.xml"
    return fp32.name


def _check_export(graph: Path, stack: Any, sample: dict[str, Any], name: str) -> None:
    """The exported float graph must reproduce the torch stack (cosine >= 0.9999) before it is cached."""
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        want = stack(*sample.values()).numpy()
    got = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).run(
        None, {k: v.numpy() for k, v in sample.items()}
    )[0]
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    if got.shape != want.shape or float(cos.min()) < 0.9999:
        raise ModelLoadError(
            f"the ONNX export of {name!r} does not reproduce its torch vectors (shape {got.shape} vs "
            f"{want.shape}, cosine {float(cos.min()):.5f}); use backend torch"
        )


class OnnxTextEncoder:
    """Encodes texts with an exported graph: the same vectors as sentence-transformers' ``encode_query`` /
    ``encode_document`` for that route (checked by the tests: cosine >= 0.9999 in float32), without torch."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        self.folder = folder
        self.manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.manifest["max_seq_length"])
        self.tokenizer.enable_padding(pad_id=self.manifest["pad_id"], pad_token=self.manifest["pad_token"])
        self.inputs: list[str] = self.manifest["inputs"]
        graph = folder / self.manifest["graph"]
        threads = threads or _threads_setting()
        if self.manifest["backend"].startswith("openvino"):
            import openvino as ov

            # f32 inference: the CPU plugin may otherwise pick a reduced precision (its "performance" default).
            config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            compiled = ov.Core().compile_model(str(graph), "CPU", config)
            self._run = lambda feed: compiled(feed)[0]
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
            self._run = lambda feed: session.run(None, feed)[0]

    @property
    def dimension(self) -> int | None:
        dim = self.manifest.get("dimension")
        return int(dim) if dim else None

    @property
    def prompt(self) -> str:
        """The prompt sentence-transformers applies to this route by default (recorded at export)."""
        return str(self.manifest.get("prompt") or "")

    def encode(self, texts: Sequence[str], prompt: str = "", batch_size: int = 32) -> np.ndarray:
        """Float32 embeddings in input order; batches are formed by length, as sentence-transformers does."""
        texts = [prompt + t for t in texts] if prompt else list(texts)
        if not texts:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: list[np.ndarray] = []
        for i in range(0, len(texts), batch_size):
            encodings = self.tokenizer.encode_batch([texts[j] for j in order[i : i + batch_size]])
            feed = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            out.append(np.asarray(self._run({n: feed[n] for n in self.inputs}), dtype=np.float32))
        result = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        result[order] = np.concatenate(out)
        return result


def _threads_setting() -> int | None:
    value = os.environ.get("LEAF_MONGO_BACKEND_THREADS")
    return int(value) if value and value.isdigit() and int(value) > 0 else None
