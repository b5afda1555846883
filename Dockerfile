# quill-controller image. Build from the repository root:
#   docker build -t quill-controller .
# The builder fetches the pinned Go toolchain through GOTOOLCHAIN like every
# other entry point of this repository.
FROM golang:1.27 AS build
ENV GOTOOLCHAIN=go1.27.3 CGO_ENABLED=0 GOFLAGS=-buildvcs=false
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY pkg/ pkg/
RUN go build -trimpath -ldflags "-s -w" -o /out/quill-controller ./cmd/controller

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/quill-controller /quill-controller
USER 65532:65532
ENTRYPOINT ["/quill-controller"]
