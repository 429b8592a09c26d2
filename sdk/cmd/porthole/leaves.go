package main

import (
	"context"
	"io"
)

// moreLeaves are the fleet commands: devices, status, ssh-config.
func moreLeaves(e *env, stdin io.Reader, stdout, stderr io.Writer) []leaf {
	return []leaf{
		{use: "devices", short: "list devices across the configured hubs, with connection state and agent health",
			example: "  porthole devices\n  porthole devices --hub hub-eu -o json\n  porthole devices --query \"SELECT * FROM devices WHERE tags.site = 'lab'\"",
			body:    func(ctx context.Context, a []string) error { return cmdDevices(ctx, e, a, stdout, stderr) }},
		{use: "status <device>", short: "one device in detail: hub, online, agent, streams, last rejection and error", devices: true,
			example: "  porthole status dev1\n  porthole status dev1 -o json",
			body:    func(ctx context.Context, a []string) error { return cmdStatus(ctx, e, a, stdout, stderr) }},
		{use: "ssh-config", short: "print (--write: install) ssh Host blocks so plain ssh/scp/rsync/sftp reach <device>.porthole",
			example: "  porthole ssh-config --write && ssh root@dev1.porthole\n  porthole ssh-config --profile lab >> ~/.ssh/config\n  rsync -a ./build/ dev1.porthole:/opt/app/",
			body:    func(ctx context.Context, a []string) error { return cmdSSHConfig(ctx, e, a, stdout, stderr) }},
	}
}
