# syntax=docker/dockerfile:1
#
# kproxy container image: a static binary on distroless, running as non-root.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t kproxy:dev .
#
# (No Docker engine runs on the project's dev machines or in CI, so this file
# is not built there; the build command below is the same one `go build` runs.)
#
# Configuration: KPROXY_* environment variables (KPROXY_ + the config key
# upper-cased, dots to underscores; lists comma-separated), or a file:
#
#   docker run --rm -v $PWD/kproxy.yaml:/etc/kproxy/kproxy.yaml:ro \
#     kproxy:dev run --config /etc/kproxy/kproxy.yaml
#
# Ports (kproxy listens on them only as configured; in a pod or a shared
# network namespace, keep the client ports on 127.0.0.1):
#   9092         listen.bootstrap: the client bootstrap port
#   19092-19100  listen.broker_port_base + N: one port per upstream broker N
#   9644         admin.listen: /metrics, /healthz, /readyz (set
#                KPROXY_ADMIN_LISTEN=0.0.0.0:9644 so probes and Prometheus reach it)

FROM golang:1.26 AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Only the sidecar: the developer tools (cmd/kproxy-dev) and their client
# libraries stay out of the image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /kproxy ./cmd/kproxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /kproxy /kproxy
# 65532 is distroless's "nonroot" user. Numeric, so that Kubernetes'
# runAsNonRoot can verify it without a user database.
USER 65532:65532
EXPOSE 9092 9644 19092-19100
ENTRYPOINT ["/kproxy"]
CMD ["run"]
