# durable-train worker on CPU: native TensorFlow 2.21 through @tensorflow/tfjs-node, built by
# scripts/setup-native.sh from PyPI's tensorflow-cpu wheel (tfjs-node's own install script, which
# fetches libtensorflow 2.9.1 from a Google host, does not run).
# Build from the repository root (BuildKit reads docker/worker-cpu.Dockerfile.dockerignore):
#   docker build -f docker/worker-cpu.Dockerfile -t durable-train:cpu .
FROM node:20-bookworm-slim
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Build tools for the N-API addon (node-gyp), pip to fetch the TensorFlow wheel.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip make g++ ca-certificates \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY scripts/setup-native.sh scripts/setup-native-gpu.sh ./scripts/
# The addon and TensorFlow's libraries are hard links into node_modules: the cache can go.
RUN bash scripts/setup-native.sh && rm -rf .cache /root/.cache
COPY tsconfig.json ./
COPY src ./src
COPY examples ./examples
RUN mkdir -p /data/runs && chown -R node:node /data
# DT_BACKEND=tensorflow: fail loudly if native TensorFlow is missing, rather than train on wasm.
ENV DT_BACKEND=tensorflow \
    DT_TASK_QUEUE=durable-train \
    DT_CHECKPOINT_URI=file:///data/runs \
    NODE_ENV=production
USER 1000:1000
VOLUME /data
# node itself as the main process (not npx), so `docker stop`'s SIGTERM reaches the worker and it
# hands its runs over; run with --init (compose: init: true) so a dead trainer is reaped.
CMD ["node", "--import", "tsx", "src/worker.ts"]
