#!/usr/bin/env bash
# Installs what running the tests and the demo needs on Debian or Ubuntu: the traffic
# tools the end-to-end tests drive, and etcd and bird for the cluster tests. With --generate, also what regenerating the BPF
# objects needs (clang, llvm-strip, libbpf headers). Installs only what is missing.
set -euo pipefail

need=()
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v tracepath >/dev/null 2>&1 || need+=(iputils-tracepath)
command -v ip >/dev/null 2>&1 || need+=(iproute2) # the tests compare `ip -j` output
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3) # the bandwidth tests measure with it
command -v etcd >/dev/null 2>&1 || need+=(etcd-server) # the cluster tests share a store in it
command -v bird >/dev/null 2>&1 || need+=(bird2)         # the cluster tests' upstream router
if [ "${1:-}" = "--generate" ]; then
	command -v clang >/dev/null 2>&1 || need+=(clang)
	command -v llvm-strip >/dev/null 2>&1 || need+=(llvm)
	[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
	[ -f /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${need[*]}; run as root (sudo make ...) to install them" >&2
		exit 1
	fi
	echo "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# The tests start their own etcd and bird in namespaces; the packages' services,
	# which Debian starts, are not wanted.
	if [ -d /run/systemd/system ]; then
		for pkg in etcd-server:etcd bird2:bird; do
			if [[ " ${need[*]} " == *" ${pkg%%:*} "* ]]; then
				systemctl disable --now "${pkg##*:}" >/dev/null 2>&1 || true
			fi
		done
	fi
fi
