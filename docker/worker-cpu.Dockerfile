# durable-train worker on CPU (native TensorFlow through @tensorflow/tfjs-node).
# Built with internet access: tfjs-node's own install script downloads libtensorflow here.
# Build from the repository root (BuildKit reads docker/worker-cpu.Dockerfile.dockerignore):
#   docker build -f docker/worker-cpu.Dockerfile -t durable-train:cpu .
FROM node:20-bookworm-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json ./
COPY src ./src
COPY examples ./examples
RUN mkdir -p /data/runs && chown -R node:node /data
# DT_BACKEND=tensorflow: fail loudly if native TensorFlow did not install, rather than train on wasm.
ENV DT_BACKEND=tensorflow \
    DT_TASK_QUEUE=durable-train \
    DT_CHECKPOINT_URI=file:///data/runs \
    NODE_ENV=production
USER node
VOLUME /data
# node itself as the main process (not npx), so `docker stop`'s SIGTERM reaches the worker and it
# shuts down gracefully; run with --init (compose: init: true) so a zombie trainer is reaped.
CMD ["node", "--import", "tsx", "src/worker.ts"]
