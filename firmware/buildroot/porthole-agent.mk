################################################################################
#
# porthole-agent
#
################################################################################

# A pinned commit of the source.
PORTHOLE_AGENT_VERSION = eecae6cc5461364ce8ecad6776421ee96baebfe8
PORTHOLE_AGENT_SITE = $(call github,porthole-iot,porthole,$(PORTHOLE_AGENT_VERSION))
PORTHOLE_AGENT_LICENSE = Apache-2.0
PORTHOLE_AGENT_LICENSE_FILES = LICENSE
PORTHOLE_AGENT_DEPENDENCIES = ca-certificates

# golang-package vendors the Go modules at download time; the hash of the
# vendored tarball and of LICENSE are in porthole-agent.hash.
PORTHOLE_AGENT_GOMOD = github.com/porthole-iot/porthole
PORTHOLE_AGENT_BUILD_TARGETS = agent/cmd/porthole-agent
PORTHOLE_AGENT_INSTALL_BINS = porthole-agent
PORTHOLE_AGENT_TAGS = nethttpomithttp2
PORTHOLE_AGENT_LDFLAGS = -s -w -X main.version=$(PORTHOLE_AGENT_VERSION)

PORTHOLE_AGENT_CONFIG_FILE = $(call qstrip,$(BR2_PACKAGE_PORTHOLE_AGENT_CONFIG))
ifeq ($(PORTHOLE_AGENT_CONFIG_FILE),)
PORTHOLE_AGENT_CONFIG_FILE = $(@D)/configs/agent.yaml
endif

define PORTHOLE_AGENT_INSTALL_CONFIG
	$(INSTALL) -D -m 0600 $(PORTHOLE_AGENT_CONFIG_FILE) \
		$(TARGET_DIR)/etc/porthole/agent.yaml
	$(INSTALL) -d -m 0700 $(TARGET_DIR)/var/lib/porthole
endef
PORTHOLE_AGENT_POST_INSTALL_TARGET_HOOKS += PORTHOLE_AGENT_INSTALL_CONFIG

define PORTHOLE_AGENT_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(PORTHOLE_AGENT_PKGDIR)/S95porthole-agent \
		$(TARGET_DIR)/etc/init.d/S95porthole-agent
endef

define PORTHOLE_AGENT_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/packaging/systemd/porthole-agent.service \
		$(TARGET_DIR)/usr/lib/systemd/system/porthole-agent.service
endef

$(eval $(golang-package))
