# quill-controller image. Build from the repository root:
#   docker build --build-arg VERSION=v0.1.0 -t quill-controller:v0.1.0 .
#
# `make image` builds this file with buildah on machines without a registry
# (CI), FROM local stand-ins for the two base images made from Debian 12
# packages by hack/images/base-images.sh, and checks the result; test/image
# runs that image under podman the way the chart runs it.
#
# The binary is built with cgo: PKCS#11 libraries (SoftHSM, vendor HSM
# clients) are loaded with dlopen, so it links glibc and the runtime image
# is a glibc distroless one. Builder and runtime are the same Debian release
# (12, glibc 2.36), so the binary never needs a newer glibc than it finds;
# hack/image-binary.sh checks that, and the other properties, and is what
# `make image-binary` runs in CI with the same flags.
ARG GO_IMAGE=golang:1.27-bookworm
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${GO_IMAGE} AS build
# A machine's own Go ignores go.mod's toolchain line; pin it as every other
# entry point of this repository does.
ENV GOTOOLCHAIN=go1.27.3 GOFLAGS=-buildvcs=false
# Where modules come from, when the default proxy is not reachable
# (--build-arg GOPROXY=...); unset, go uses its defaults.
ARG GOPROXY
ARG GOSUMDB
ARG GOPRIVATE
ARG GONOSUMDB
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY pkg/ pkg/
COPY hack/image-binary.sh hack/
ARG VERSION=devel
RUN hack/image-binary.sh /out/quill-controller "${VERSION}" /out/quillctl

# cc (glibc, libgcc, libstdc++): vendor PKCS#11 libraries are often C++.
FROM ${BASE_IMAGE}
COPY --from=build /out/quill-controller /quill-controller
# quillctl, for `kubectl exec <pod> -- /quillctl audit report --archive-dir
# ...`: the ledger archive is on the controller's volume, and the image has
# no shell to copy it out with.
COPY --from=build /out/quillctl /quillctl
USER 65532:65532
ENTRYPOINT ["/quill-controller"]
