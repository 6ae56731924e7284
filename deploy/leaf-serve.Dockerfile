# leaf-mongo serve for docker-compose.autoembed.yml: the LEAF pair as mongot's embedding provider.
# CPU torch pinned (an unpinned torch resolves to a CUDA build of several GB); ONNX Runtime for the
# leaf's onnx-int8 query path. Models download from the Hugging Face hub on first start into the
# leaf_models volume (HF_HOME), exports of the query model into the same volume.
FROM python:3.11.7-slim-bookworm
WORKDIR /src
COPY pyproject.toml README.md ./
COPY leaf_mongo ./leaf_mongo
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir ".[serve,onnx]"
ENV HF_HOME=/models/hf LEAF_MONGO_BACKEND_CACHE=/models/backends
ENTRYPOINT ["leaf-mongo", "serve"]
