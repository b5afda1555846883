# Sourced by hack/images/*.sh: how containers are run on these machines.
# test/image reads the same settings (QUILL_OCI_RUNTIME, runc by default,
# and the limits below) so that the image is checked as it is tested.
#
#   oci_runtime: the OCI runtime for buildah's RUN steps and podman. runc,
#     which `make deps` installs: Debian 12's crun refuses to start
#     containers on a host with both cgroup v1 and v2 hierarchies mounted
#     ("cgroups in hybrid mode not supported"), as on these test machines.
#     QUILL_OCI_RUNTIME overrides it.
#   run_flags: `podman run --rm` with the runtime and explicit resource
#     limits: podman's defaults (open files 1048576, processes as the
#     host's) are refused by runc here ("error setting rlimits ...:
#     operation not permitted"). Open files: this shell's hard limit;
#     processes: 4096, far above the controller's threads.
oci_runtime=${QUILL_OCI_RUNTIME:-runc}
command -v "${oci_runtime}" >/dev/null || {
	echo "podman.sh: OCI runtime ${oci_runtime} is missing: run make deps" >&2
	exit 1
}
command -v podman >/dev/null || {
	echo "podman.sh: podman is missing: run make deps" >&2
	exit 1
}
run_flags=(--runtime "${oci_runtime}" run --rm
	--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
