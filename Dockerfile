# sluice container image: build on Debian 12, run on Debian 12 slim as a
# non-root user with pipelines/default.yaml. Keys and tokens are not baked
# in: mount them (see README.md, "Production").
#
#   docker build -t sluice .
#   docker run --init -p 8000:8000 -v "$PWD/data:/app/data:ro" sluice
#
# With podman or buildah, build with `--format docker`: the OCI format has no
# HEALTHCHECK and drops it. tests/container/container_test.sh builds and runs
# this image in the suite.

# BASE: the Debian 12 image both stages start from (the container test
# passes one it made with debootstrap: no registry needed)
ARG BASE=debian:12-slim

# ---- build -----------------------------------------------------------------
FROM ${BASE} AS build
WORKDIR /src
# The package lists live in scripts/deps.sh only.
COPY scripts/deps.sh scripts/deps.sh
RUN bash scripts/deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
# only sluice and the stages (the `runtime` target): no mock, no benchmarks
RUN rm -rf build \
 && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TESTS=OFF \
 && cmake --build build -j"$(nproc)" --target runtime \
 && test -x build/sluice && ls build/plugins/*.so

# ---- runtime ---------------------------------------------------------------
FROM ${BASE}
COPY scripts/deps.sh /tmp/deps.sh
RUN bash /tmp/deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/deps.sh \
 && useradd --system --uid 10001 --user-group --home-dir /app \
            --shell /usr/sbin/nologin sluice

WORKDIR /app
COPY --from=build /src/build/sluice /app/sluice
# the stages only, not the build leftovers next to them (objects, archives)
COPY --from=build /src/build/plugins/*.so /app/plugins/
COPY pipelines/ /app/pipelines/
# /app/state: the local state file (key health, windows) - writable, unlike
# the data folder that is mounted read-only; a volume keeps it
RUN mkdir -p /app/data /app/logs /app/state \
 && chown sluice:sluice /app/data /app/logs /app/state
VOLUME /app/state

# default.yaml reads plugins_dir from ${SLUICE_PLUGINS_DIR:-build/plugins}.
ENV SLUICE_PLUGINS_DIR=/app/plugins \
    SLUICE_STATE_PATH=/app/state/state.db \
    HOST=0.0.0.0

USER sluice
EXPOSE 8000
# asks the listener the same config names (server.host/port, HOST, PORT)
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/app/sluice", "--health", "-c", "/app/pipelines/default.yaml"]
CMD ["/app/sluice", "-c", "/app/pipelines/default.yaml"]
