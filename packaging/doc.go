// Package packaging has no library code. Its tests build the porthole-agent
// packages (.deb and OpenWrt .ipk, with packaging/nfpm.yaml and the scripts in
// packaging/scripts) and the firmware rootfs overlay, install them into
// throw-away roots and check what lands there: files, modes, conffiles kept
// on upgrade, what the maintainer scripts do for each init system, and the
// BusyBox init script's start / respawn / stop.
//
// The make targets live in packaging/cross.mk (cross, size, test-cross,
// package, image-overlay, test-packaging).
//
// The tests need root (chroot, mknod), dpkg, GNU tar, the Go module proxy
// (nfpm runs through go run) and a static busybox (Debian busybox-static,
// fetched with apt-get download when it is not installed). Without one of
// them a test skips, naming it; with CI=true it fails instead.
package packaging
