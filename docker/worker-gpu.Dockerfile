# durable-train worker on an NVIDIA GPU (@tensorflow/tfjs-node-gpu 4.22).
# tfjs-node-gpu 4.22 links libtensorflow 2.9.1, built for CUDA 11.2 and cuDNN 8.1: the base image
# carries exactly those. Needs the NVIDIA container toolkit on the host (docker run --gpus all).
# Build from the repository root (BuildKit reads docker/worker-gpu.Dockerfile.dockerignore):
#   docker build -f docker/worker-gpu.Dockerfile -t durable-train:gpu .
FROM nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates python3 make g++ \
  && curl -fsSL https://deb.nodesource.com/setup_20.x | bash - \
  && apt-get install -y --no-install-recommends nodejs && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# Without the CPU build (tfjs-node, an optional dependency): both register the `tensorflow` backend.
# --omit=optional again on the second install, or npm would add tfjs-node back while resolving.
RUN npm ci --no-audit --no-fund --omit=optional \
  && npm install --no-save --no-audit --no-fund --omit=optional @tensorflow/tfjs-node-gpu@4.22.0 \
  && npm cache clean --force
COPY tsconfig.json ./
COPY src ./src
COPY examples ./examples
RUN useradd --create-home --uid 1000 durable && mkdir -p /data/runs && chown -R durable:durable /data
# DT_BACKEND=tensorflow-gpu: the trainer fails if tfjs-node-gpu is missing, and warns in the log and
# in the run's backend notes when it loads but TensorFlow places nothing on a GPU.
ENV DT_BACKEND=tensorflow-gpu \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    DT_TASK_QUEUE=durable-train \
    DT_CHECKPOINT_URI=file:///data/runs \
    NODE_ENV=production
USER durable
VOLUME /data
CMD ["node", "--import", "tsx", "src/worker.ts"]
