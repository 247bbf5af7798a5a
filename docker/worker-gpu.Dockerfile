# durable-train worker on NVIDIA GPUs: @tensorflow/tfjs-node-gpu 4.22 built by
# `scripts/setup-native.sh --gpu` against PyPI's TensorFlow 2.21 (CUDA 12), on a CUDA 12 / cuDNN 9
# base image whose libraries TensorFlow loads (so the nvidia-*-cu12 wheels are not fetched: --no-cuda).
# Needs the NVIDIA container toolkit on the host (docker run --gpus all; compose: the gpu profile).
# Build from the repository root (BuildKit reads docker/worker-gpu.Dockerfile.dockerignore):
#   docker build -f docker/worker-gpu.Dockerfile -t durable-train:gpu .
FROM node:20-bookworm-slim AS node

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip make g++ ca-certificates \
  && rm -rf /var/lib/apt/lists/*
# Node 20 with its headers (node-gyp builds against them offline) and npm, from the official image.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/include/node /usr/local/include/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
  && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: tfjs-node (an optional dependency) stays unbuilt; its dependencies are the GPU build's.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY scripts/setup-native.sh scripts/setup-native-gpu.sh ./scripts/
# No GPU while building: the script verifies the build on the CPU. The package and its libraries
# stay in .cache/tfjs-node-gpu-*/node_modules (found through .cache/tfjs-node-gpu-path).
RUN bash scripts/setup-native.sh --gpu --no-cuda \
  && rm -rf .cache/wheels .cache/npm .cache/tfjs-node-gpu-*/build /root/.cache
COPY tsconfig.json ./
COPY src ./src
COPY examples ./examples
RUN useradd --create-home --uid 1001 durable && mkdir -p /data/runs && chown -R durable:durable /data
# DT_BACKEND=tensorflow-gpu: the trainer fails if the GPU build is missing, and warns ("no GPU
# device") in the log and the run's backend notes when TensorFlow lists no GPU. DT_TRAINER_SLOTS is
# left unset: one trainer per GPU the worker sees (nvidia-smi -L, which `utility` mounts), each
# pinned to its GPU through CUDA_VISIBLE_DEVICES.
ENV DT_BACKEND=tensorflow-gpu \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    DT_TASK_QUEUE=durable-train \
    DT_CHECKPOINT_URI=file:///data/runs \
    NODE_ENV=production
USER 1001:1001
VOLUME /data
CMD ["node", "--import", "tsx", "src/worker.ts"]
