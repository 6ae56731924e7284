"""``leaf-mongo serve``: the LEAF pair as an embedding service.

mongot (MongoDB Community Search) embeds documents and queries itself for ``autoEmbed`` indexes, through the
Voyage AI protocol; pointed at this service (``embedding.providerEndpoint``), it gets teacher vectors for
``input_type: "document"`` and leaf vectors for ``input_type: "query"``: server-side, automatically synced,
asymmetric LEAF retrieval, on the operator's own CPU. The same pair is served over the OpenAI embeddings protocol
(model ``leaf-query`` / ``leaf-document``) for OpenAI-style clients.

Modules: ``wire`` / ``voyage`` / ``openai_format`` (pure wire formats), ``batcher`` (dynamic batching and
back-pressure), ``engine`` (the models), ``auth``, ``metrics``, ``config``, ``app`` (routes), ``server``
(assembly and uvicorn).
"""
