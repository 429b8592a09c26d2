SUMMARY = "SSH into this device through Azure IoT Hub device streams"
DESCRIPTION = "porthole-agent provisions the device through the Azure Device \
Provisioning Service, keeps its IoT Hub connection over outbound 8883 or 443 \
and bridges device streams to the local services allowed in \
/etc/porthole/agent.yaml."
HOMEPAGE = "https://github.com/porthole-iot/porthole"
SECTION = "net"
# The repository carries no license file yet: set LICENSE and
# LIC_FILES_CHKSUM once it does.
LICENSE = "CLOSED"

# Written for Yocto 5.0 (scarthgap): go-mod fetches modules in do_compile.
SRC_URI = "git://github.com/porthole-iot/porthole.git;protocol=https;branch=main;destsuffix=${GO_SRCURI_DESTSUFFIX}"
SRCREV = "${AUTOREV}"
PV = "0.1.0+git"

GO_IMPORT = "github.com/porthole-iot/porthole"
GO_INSTALL = "${GO_IMPORT}/agent/cmd/porthole-agent"
GO_LINKSHARED = ""
GOBUILDFLAGS:append = " -trimpath"
GO_EXTRA_LDFLAGS = "-s -w -X main.version=${PV}"
# A static, cgo-free binary, like the project's own releases.
export CGO_ENABLED = "0"

inherit go-mod systemd update-rc.d

do_compile[network] = "1"

PORTHOLE_SRC = "${S}/src/${GO_IMPORT}"

SYSTEMD_SERVICE:${PN} = "porthole-agent.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# SysV: the BusyBox-compatible script with its own respawn loop.
INITSCRIPT_NAME = "porthole-agent"
INITSCRIPT_PARAMS = "defaults 95 10"

do_install:append() {
	install -d -m 0755 ${D}${sysconfdir}/porthole
	install -m 0600 ${PORTHOLE_SRC}/configs/agent.yaml ${D}${sysconfdir}/porthole/agent.yaml
	install -d -m 0700 ${D}${localstatedir}/lib/porthole

	if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
		install -D -m 0644 ${PORTHOLE_SRC}/packaging/systemd/porthole-agent.service \
			${D}${systemd_system_unitdir}/porthole-agent.service
	fi
	if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
		install -D -m 0755 ${PORTHOLE_SRC}/firmware/buildroot/S95porthole-agent \
			${D}${sysconfdir}/init.d/porthole-agent
	fi
}

CONFFILES:${PN} = "${sysconfdir}/porthole/agent.yaml"
FILES:${PN} += "${localstatedir}/lib/porthole"
RDEPENDS:${PN} = "ca-certificates"
