# The extproc server (and, with another command, the mock provider) as one small image.
# A build stage with a C compiler builds the wheel (setup.py compiles the hot path with
# mypyc); the image installs that wheel and carries no compiler.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY extproc ./extproc
RUN find extproc -name '*.so' -delete && rm -f extproc/_native_build.py \
    && pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY --from=build /wheels /wheels
COPY envoy ./envoy
COPY config ./config
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 extproc \
    && python -c "import extproc.native as n, extproc.guards.reframe; assert n.status()['compiled'], n.status()"
USER extproc

EXPOSE 50051 9464
HEALTHCHECK --interval=5s --timeout=2s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=1)"
ENTRYPOINT ["extproc"]
CMD ["serve", "--config", "/app/config/gateway.yaml", "--listen", "0.0.0.0:50051", \
     "--admin-host", "0.0.0.0", "--admin-port", "9464"]
