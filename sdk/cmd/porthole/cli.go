package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The command tree is cobra's (help, completion, "did you mean" for
// commands); each command's body keeps parsing its own arguments with the
// standard flag package (parse in run.go), so a command is added by one
// leaf registration in newRoot.

// version is the CLI's version, set at build time with
// -ldflags "-X main.version=…".
var version = "dev"

// leaf describes one command that runs a body func(args) error.
type leaf struct {
	use, short, long, example string
	// body runs the command with its arguments (flags included).
	body func(ctx context.Context, args []string) error
	// devices: the first positional argument completes device names.
	devices bool
}

// errDescribe is what parse returns for describeArgs: the command only
// registered its flags (see flagsOf).
var errDescribe = errors.New("describe only")

// describeMarker is the one argument that makes parse capture the flag set
// and stop the command before it does anything.
const describeMarker = "\x00porthole-describe"

// described receives the flag set parse captured; describeMu serialises
// flagsOf.
var (
	describeMu sync.Mutex
	described  *flag.FlagSet
)

// flagsOf returns the flags a body registers, by running it with the
// describe marker: every command calls parse before any side effect.
func flagsOf(body func(ctx context.Context, args []string) error) *flag.FlagSet {
	describeMu.Lock()
	defer describeMu.Unlock()
	described = nil
	err := body(context.Background(), []string{describeMarker})
	fs := described
	described = nil
	if !errors.Is(err, errDescribe) || fs == nil {
		return flag.NewFlagSet("none", flag.ContinueOnError)
	}
	return fs
}

// newRoot builds the command tree for one run.
func newRoot(ctx context.Context, e *env, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "porthole",
		Short: "reach devices behind NAT through Azure IoT Hub device streams",
		Long: "porthole reaches Linux devices behind NAT through Azure IoT Hub device streams\n" +
			"(against Azure or hubsim alike), finding each device's hub through DPS.\n\n" + usage,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprint(stderr, usage)
			return usagef("no command")
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)

	add := func(parent *cobra.Command, l leaf) *cobra.Command {
		c := leafCommand(e, l)
		parent.AddCommand(c)
		return c
	}
	add(root, leaf{use: "ssh [user@]<device> [-- ssh args...]", short: "ssh into a device (runs the system ssh)", devices: true,
		long: "Runs the system ssh with porthole as its ProxyCommand. The device's hub is found\n" +
			"through DPS (or --hub); the stream is opened before ssh starts, so a refusal or\n" +
			"timeout is reported by porthole with the device's reason.",
		example: "  porthole ssh dev1\n  porthole ssh admin@dev1 -- -L 8080:localhost:80\n  porthole ssh dev1 --hub hub-eu --timeout 10s",
		body:    func(ctx context.Context, a []string) error { return cmdSSH(ctx, e, a, stdin, stdout, stderr) }})
	add(root, leaf{use: "stdio <device>", short: "bridge one stream to stdin/stdout (ssh's ProxyCommand)", devices: true,
		example: "  ssh -o ProxyCommand='porthole stdio %h' dev1\n  porthole stdio dev1.porthole --stream ssh",
		body:    func(ctx context.Context, a []string) error { return cmdStdio(ctx, e, a, stdin, stdout, stderr) }})
	add(root, leaf{use: "proxy <device> -L [addr:]<port>[:target] [-L ...]", short: "forward local ports to a device's streams (several over one multiplexed stream)", devices: true,
		example: "  porthole proxy dev1 -L 2222\n  porthole proxy dev1 -L 8080:web -L 2222:ssh\n  porthole proxy dev1 -L 127.0.0.1:8080 --stream web --mux off",
		body:    func(ctx context.Context, a []string) error { return cmdProxy(ctx, e, a, stderr) }})
	add(root, leaf{use: "socks <device> -D [addr:]<port>", short: "a SOCKS5 server whose connections go through the device (its allow-list decides)", devices: true,
		example: "  porthole socks dev1 -D 1080\n  curl --socks5-hostname 127.0.0.1:1080 http://192.168.1.1/",
		body:    func(ctx context.Context, a []string) error { return cmdSocks(ctx, e, a, stderr) }})
	add(root, leaf{use: "invoke <device> <method>", short: "invoke a direct method (exit 1 when its status is ≥ 400)", devices: true,
		example: "  porthole invoke dev1 reprovision --payload '{\"force\":true}'\n  porthole invoke dev1 ping --timeout 10s",
		body:    func(ctx context.Context, a []string) error { return cmdInvoke(ctx, e, a, stdout, stderr) }})

	dps := &cobra.Command{Use: "dps", Short: "manage DPS enrollments", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: porthole dps enroll|get|delete <id> [flags], or porthole dps derive-key")
		}}
	root.AddCommand(dps)
	add(dps, leaf{use: "enroll <registrationId>", short: "create or replace a symmetric-key enrollment",
		example: "  porthole dps enroll dev1 --hub hub-eu.azure-devices.net --key-file dev1.key\n  porthole dps enroll fleet --group --allocation hashed --hub a.azure-devices.net --hub b.azure-devices.net",
		body:    func(ctx context.Context, a []string) error { return cmdDPSEnroll(ctx, e, a, stdout, stderr) }})
	for _, verb := range []string{"get", "delete"} {
		add(dps, leaf{use: verb + " <id>", short: verb + " an enrollment (keys are never shown)",
			example: "  porthole dps " + verb + " dev1\n  porthole dps " + verb + " fleet --group",
			body:    func(ctx context.Context, a []string) error { return cmdDPSGetDelete(ctx, e, verb, a, stdout, stderr) }})
	}
	add(dps, leaf{use: "derive-key --group-key-file <file|-> <registrationId>...", short: "derive per-device keys from a group key",
		example: "  porthole dps derive-key --group-key-file group.key --out-dir keys/ dev1 dev2",
		body:    func(ctx context.Context, a []string) error { return cmdDPSDeriveKey(a, stdin, stdout, stderr) }})

	root.AddCommand(&cobra.Command{Use: "version", Short: "print porthole's version", Args: cobra.NoArgs,
		Example: "  porthole version",
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(stdout, "porthole %s\n", version)
			return err
		}})
	for _, l := range moreLeaves(e, stdin, stdout, stderr) {
		add(root, l)
	}
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Example = "  source <(porthole completion bash)\n  porthole completion zsh > \"${fpath[1]}/_porthole\"\n  porthole completion fish | source"
		}
	}
	return root
}

// leafCommand wraps a body as a cobra command. cobra does not parse the
// flags (the body does); it shows them in help and completes them.
func leafCommand(e *env, l leaf) *cobra.Command {
	fs := flagsOf(l.body)
	c := &cobra.Command{
		Use: l.use, Short: l.short, Long: l.long, Example: l.example,
		DisableFlagParsing: true,
	}
	if c.Long == "" {
		c.Long = l.short
	}
	fs.VisitAll(func(f *flag.Flag) {
		pf := pflag.PFlagFromGoFlag(f)
		pf.Shorthand = "" // every flag is written --name (or -name)
		c.Flags().AddFlag(pf)
	})
	c.RunE = func(cmd *cobra.Command, args []string) error {
		for _, a := range args {
			if a == "--" {
				break
			}
			if a == "-h" || a == "--help" || a == "-help" {
				return cmd.Help()
			}
		}
		return l.body(cmd.Context(), args)
	}
	c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return completeLeaf(e, fs, l.devices, args, toComplete)
	}
	return c
}

// completeLeaf completes a command whose flags cobra does not parse (cobra
// still offers their names): a flag's value (hub and profile names; files
// for file flags), else device names from the lookup cache for the first positional
// argument.
func completeLeaf(e *env, fs *flag.FlagSet, devices bool, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if strings.HasPrefix(toComplete, "-") {
		return nil, cobra.ShellCompDirectiveNoFileComp // cobra offers the flag names itself
	}
	// The previous word a flag that takes a value?
	if n := len(args); n > 0 && strings.HasPrefix(args[n-1], "-") && !strings.Contains(args[n-1], "=") {
		if f := fs.Lookup(strings.TrimLeft(args[n-1], "-")); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
				if strings.Contains(f.Name, "file") || f.Name == "ca" || f.Name == "config" || f.Name == "out-dir" {
					return nil, cobra.ShellCompDirectiveDefault
				}
				if f.Name == "hub" || f.Name == "profile" {
					return completeHubs(e, args, toComplete), cobra.ShellCompDirectiveNoFileComp
				}
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
		}
	}
	if !devices || positionalCount(fs, args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeDevices(e, args, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// positionalCount counts the positional arguments in args.
func positionalCount(fs *flag.FlagSet, args []string) int {
	n := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			if strings.Contains(a, "=") {
				continue
			}
			f := fs.Lookup(strings.TrimLeft(a, "-"))
			if f != nil {
				if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
					i++ // its value
				}
			}
			continue
		}
		n++
	}
	return n
}

// completeDevices offers the device names of the lookup cache (of the
// profile named in args, if any), with their hub as the description.
func completeDevices(e *env, args []string, toComplete string) []string {
	c := openCache(e, profileFromArgs(args))
	var out []string
	for _, d := range c.devices() {
		if strings.HasPrefix(d.id, toComplete) {
			out = append(out, d.id+"\t"+d.hub)
		}
	}
	slices.Sort(out)
	return out
}

// completeHubs offers the configured hub names.
func completeHubs(e *env, args []string, toComplete string) []string {
	s, err := loadSettings(e, &connFlags{profile: profileFromArgs(args)}, io.Discard)
	if err != nil {
		return nil
	}
	var out []string
	for _, h := range s.hubs {
		if strings.HasPrefix(h.name, toComplete) {
			out = append(out, h.name+"\t"+h.host)
		}
	}
	return out
}

// profileFromArgs finds --profile in a partial command line.
func profileFromArgs(args []string) string {
	for i, a := range args {
		for _, p := range []string{"--profile", "-profile"} {
			if a == p && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v
			}
		}
	}
	return ""
}
