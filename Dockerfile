# sluice container image: build on Debian 12, run on Debian 12 slim as a
# non-root user with pipelines/default.yaml. Keys and tokens are not baked
# in: mount them (see README.md, "Production").
#
#   docker build -t sluice .
#   docker run --init -p 8000:8000 -v "$PWD/data:/app/data:ro" sluice

# ---- build -----------------------------------------------------------------
FROM debian:12-slim AS build
WORKDIR /src
# The package lists live in scripts/deps.sh only.
COPY scripts/deps.sh scripts/deps.sh
RUN bash scripts/deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN rm -rf build \
 && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TESTS=OFF \
 && cmake --build build -j"$(nproc)" \
 && test -x build/sluice && ls build/plugins/*.so

# ---- runtime ---------------------------------------------------------------
FROM debian:12-slim
COPY scripts/deps.sh /tmp/deps.sh
RUN bash /tmp/deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/deps.sh \
 && useradd --system --uid 10001 --user-group --home-dir /app \
            --shell /usr/sbin/nologin sluice

WORKDIR /app
COPY --from=build /src/build/sluice /app/sluice
COPY --from=build /src/build/plugins/ /app/plugins/
COPY pipelines/ /app/pipelines/
RUN mkdir -p /app/data /app/logs && chown sluice:sluice /app/data /app/logs

# default.yaml reads plugins_dir from ${SLUICE_PLUGINS_DIR:-build/plugins}.
ENV SLUICE_PLUGINS_DIR=/app/plugins \
    HOST=0.0.0.0

USER sluice
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT:-8000}/health" || exit 1
CMD ["/app/sluice", "-c", "/app/pipelines/default.yaml"]
