#!/usr/bin/env bash
# Makes the two base images the Dockerfile takes as build arguments from
# Debian 12 packages, for machines that cannot pull from a registry (these
# test machines, CI): hack/images/builder.sh (GO_IMAGE, a stand-in for
# golang:1.27-bookworm) and hack/images/runtime.sh (BASE_IMAGE, a stand-in
# for gcr.io/distroless/cc-debian12:nonroot). A user with a registry builds
# with the real images. Each is cached in the container store, keyed by its
# pinned inputs (lib.sh).
#
# Prints the build arguments:
#   GO_IMAGE=localhost/quill/builder:<key> BASE_IMAGE=localhost/quill/runtime:<key>
# Usage: hack/images/base-images.sh
set -euo pipefail

dir=$(dirname "$0")
runtime=$("${dir}/runtime.sh")
builder=$("${dir}/builder.sh")
echo "GO_IMAGE=${builder} BASE_IMAGE=${runtime}"
