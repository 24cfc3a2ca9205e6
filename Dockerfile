# syntax=docker/dockerfile:1
# logicnets-token-proxy: the container image of the sidecar.
#
#   docker build -t logicnets-token-proxy:0.1.0 .
#
# Two stages: `build` installs every dependency and compiles TypeScript, then drops the dev
# dependencies; `runtime` holds only dist/, the production node_modules, config/, package.json and
# LICENSE, on a distroless Node 24 image (no shell, no package manager) as the numeric non-root user
# 65532. Nothing is written below /app at run time, so the image runs with a read-only root file
# system; give it a writable /tmp (the Helm chart mounts an emptyDir there).
#
# There is no Docker engine in CI: test/docker-image.test.ts reads the runtime stage's COPY lines
# from this file, lays out exactly those paths, installs the production dependencies only and runs
# `--help` and a `demo` request from that tree. Change the COPY lines and the test follows them.
#
# The proxy listens on 127.0.0.1:8080 inside the container on purpose (LISTEN_HOST): it adds
# credentials to what it forwards, so only containers sharing its network namespace (a pod, or
# `docker run --network container:<sidecar>`) may reach it. The admin port 9090 (probes, metrics,
# status) listens on all interfaces.

ARG BUILD_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /app
# Dependencies first, so this layer stays cached while only the source changes. --ignore-scripts:
# the package's own "prepare" script would try to build before the source is copied.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="logicnets-token-proxy" \
      org.opencontainers.image.description="Sidecar that adds LogicNets OAuth 2.0 access tokens to plain HTTP calls of legacy applications" \
      org.opencontainers.image.licenses="MIT"
WORKDIR /app
ENV NODE_ENV=production
# A fixed young generation. Without the flag V8 sizes it from the memory node sees (the cgroup limit
# when there is one): with gigabytes free (docker run without -m) Node 24 lets each semi-space grow
# to 64 MiB and keeps the pages after load; under a limit like the chart's 384Mi V8's rule gives
# about 1 MiB, a size that cost 10-35% of throughput in the candidates run. 4 MiB makes memory and
# throughput the same wherever the image runs, and is what `npm run bench` measures (README
# "Memory"; `npm run bench -- --flags-matrix` re-measures the candidates). The Helm chart's memory
# request and limit were measured with it and do not override it; a pod can replace it (extraEnv).
ENV NODE_OPTIONS="--max-semi-space-size=4"
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
COPY LICENSE ./LICENSE
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 8080 9090
# The distroless image's ENTRYPOINT is node itself; exec form, so node is PID 1 and gets SIGTERM.
CMD ["dist/cli.js", "serve"]
