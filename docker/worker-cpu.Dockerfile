# durable-train worker on CPU (native TensorFlow through @tensorflow/tfjs-node).
# Built with internet access: tfjs-node's own install script downloads libtensorflow here.
# Build from the repository root: docker build -f docker/worker-cpu.Dockerfile -t durable-train:cpu .
FROM node:20-bookworm-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json ./
COPY src ./src
COPY examples ./examples
ENV DT_BACKEND=tensorflow \
    DT_TASK_QUEUE=durable-train \
    DT_CHECKPOINT_URI=file:///data/runs
VOLUME /data
CMD ["npx", "tsx", "src/worker.ts"]
