package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/sdk/service"
)

// A device's hub is found, in this order: --hub; the only hub there is (a
// connection string given by flag or environment, or a config with one hub
// and no DPS); the lookup cache (fresher than cache_ttl); DPS's
// registration record (assignedHub); asking each configured hub's
// registry. The answer is cached. An operation that gets DeviceNotFound
// from a hub that came from the cache looks the device up again, once.

// target is where a device was found.
type target struct {
	hub hubCred
	// via says how: "flag", "only hub", "cache", "DPS", "registry".
	via string
}

// hubByName finds a configured hub by name or host name.
func (s *settings) hubByName(name string) (hubCred, bool) {
	for _, h := range s.hubs {
		if strings.EqualFold(h.name, name) || strings.EqualFold(h.host, name) {
			return h, true
		}
	}
	return hubCred{}, false
}

func (s *settings) hubNames() string {
	var n []string
	for _, h := range s.hubs {
		n = append(n, h.name)
	}
	return strings.Join(n, ", ")
}

func (s *settings) configName() string {
	if s.configPath != "" {
		return s.configPath
	}
	return "the config file"
}

// findHub returns the hub of device. fresh skips the cache.
func (s *settings) findHub(ctx context.Context, e *env, device string, fresh bool) (target, error) {
	if len(s.hubs) == 0 {
		return target{}, usagef("no hub connection string: use --connection-string, $%s, or connection_string or hubs: in %s", envConnectionString, s.configName())
	}
	if s.hubFlag != "" {
		h, ok := s.hubByName(s.hubFlag)
		if !ok {
			if s.explicitHub {
				return target{}, usagef("--hub %q: the connection string given names hub %s", s.hubFlag, s.hubs[0].host)
			}
			return target{}, usagef("--hub %q is not configured (configured: %s)", s.hubFlag, s.hubNames())
		}
		return target{hub: h, via: "flag"}, nil
	}
	if s.explicitHub || (len(s.hubs) == 1 && s.dpsConnectionString == "") {
		return target{hub: s.hubs[0], via: "only hub"}, nil
	}
	cache := openCache(e, s.profile)
	if !fresh && s.cacheTTL > 0 {
		if host, ok := cache.get(device, s.cacheTTL); ok {
			if h, ok := s.hubByName(host); ok {
				return target{hub: h, via: "cache"}, nil
			}
		}
	}
	t, err := s.lookupHub(ctx, device)
	if err != nil {
		return target{}, err
	}
	if s.cacheTTL > 0 {
		if err := cache.put(device, t.hub.host); err != nil {
			s.log.Debug("lookup cache not written", "err", err)
		}
	}
	return t, nil
}

// lookupHub asks DPS, then the hubs' registries.
func (s *settings) lookupHub(ctx context.Context, device string) (target, error) {
	var dpsNote string
	if s.dpsConnectionString != "" {
		d, err := s.dpsClient()
		if err != nil {
			return target{}, err
		}
		reg, err := d.GetRegistration(ctx, device)
		d.Close()
		switch {
		case err == nil && reg.AssignedHub != "":
			h, ok := s.hubByName(reg.AssignedHub)
			if !ok {
				return target{}, fmt.Errorf("DPS assigned device %q to hub %s, which has no credential here: add it under hubs: in %s (configured: %s)",
					device, reg.AssignedHub, s.configName(), s.hubNames())
			}
			s.log.Debug("found the device's hub in DPS", "device", device, "hub", h.name)
			return target{hub: h, via: "DPS"}, nil
		case err == nil:
			dpsNote = fmt.Sprintf("DPS has a registration for %q with status %q and no hub", device, reg.Status)
		case errors.Is(err, service.ErrNotFound):
			dpsNote = fmt.Sprintf("DPS has no registration for %q", device)
		default:
			return target{}, fmt.Errorf("looking up %q in DPS: %w%s", device, err, s.hint(err))
		}
	}
	if len(s.hubs) == 1 {
		return target{hub: s.hubs[0], via: "only hub"}, nil
	}
	for _, h := range s.hubs {
		c, err := s.clientFor(h)
		if err != nil {
			return target{}, err
		}
		_, err = c.GetDevice(ctx, device)
		c.Close()
		if err == nil {
			return target{hub: h, via: "registry"}, nil
		}
		if !errors.Is(err, service.ErrNotFound) {
			return target{}, fmt.Errorf("looking for %q on hub %s: %w%s", device, h.name, err, s.hint(err))
		}
	}
	msg := fmt.Sprintf("device %q is on none of the configured hubs (%s)", device, s.hubNames())
	if dpsNote != "" {
		msg += "; " + dpsNote
	}
	return target{}, errors.New(msg)
}

// deviceClient returns a service client for the hub device is on (found as
// findHub finds it: --hub, the only hub, the cache, DPS, the registries).
func (s *settings) deviceClient(ctx context.Context, e *env, device string) (*service.Client, error) {
	t, err := s.findHub(ctx, e, device, false)
	if err != nil {
		return nil, err
	}
	return s.clientFor(t.hub)
}

// clientFor returns a service client for hub h.
func (s *settings) clientFor(h hubCred) (*service.Client, error) {
	if err := checkServiceString(h.connectionString, "hub "+h.name); err != nil {
		return nil, err
	}
	cfg, err := s.serviceConfig(h.connectionString)
	if err != nil {
		return nil, err
	}
	return service.New(cfg)
}

// withDevice runs op with a client for device's hub. When op fails with
// DeviceNotFound and the hub came from the cache, the device is looked up
// again and op runs once more.
func (s *settings) withDevice(ctx context.Context, e *env, device string, op func(c *service.Client, t target) error) error {
	for attempt := 0; ; attempt++ {
		t, err := s.findHub(ctx, e, device, attempt > 0)
		if err != nil {
			return err
		}
		c, err := s.clientFor(t.hub)
		if err != nil {
			return err
		}
		err = op(c, t)
		c.Close()
		if attempt == 0 && t.via == "cache" && errors.Is(err, service.ErrNotFound) {
			s.log.Debug("cached hub does not know the device; looking it up again", "device", device, "hub", t.hub.name)
			openCache(e, s.profile).drop(device)
			continue
		}
		return err
	}
}

// deviceCache is the lookup cache: device id → hub host and when it was
// learnt, one JSON file per profile, mode 0600, written crash-safely.
type deviceCache struct {
	path string
	now  func() time.Time
}

type cacheEntry struct {
	Hub string    `json:"hub"`
	At  time.Time `json:"at"`
}

type cacheFile struct {
	Devices map[string]cacheEntry `json:"devices"`
}

func openCache(e *env, profile string) *deviceCache {
	dir := ""
	if e.userCacheDir != nil {
		if d, err := e.userCacheDir(); err == nil {
			dir = d
		}
	}
	if profile == "" {
		profile = "default"
	}
	c := &deviceCache{now: time.Now}
	if dir != "" {
		c.path = filepath.Join(dir, "porthole", profile, "devices.json")
	}
	if e.now != nil {
		c.now = e.now
	}
	return c
}

func (c *deviceCache) load() cacheFile {
	var f cacheFile
	if c.path == "" {
		return f
	}
	if b, err := os.ReadFile(c.path); err == nil {
		_ = json.Unmarshal(b, &f) // a damaged cache is an empty one
	}
	if f.Devices == nil {
		f.Devices = map[string]cacheEntry{}
	}
	return f
}

func (c *deviceCache) get(device string, ttl time.Duration) (string, bool) {
	en, ok := c.load().Devices[device]
	if !ok || c.now().Sub(en.At) > ttl || c.now().Before(en.At.Add(-time.Minute)) {
		return "", false
	}
	return en.Hub, true
}

// cached is a device the cache knows.
type cached struct{ id, hub string }

// devices lists the cache's devices, whatever their age (for completion).
func (c *deviceCache) devices() []cached {
	var out []cached
	for id, en := range c.load().Devices {
		out = append(out, cached{id, en.Hub})
	}
	slices.SortFunc(out, func(a, b cached) int { return strings.Compare(a.id, b.id) })
	return out
}

func (c *deviceCache) put(device, hub string) error {
	return c.update(func(f *cacheFile) { f.Devices[device] = cacheEntry{Hub: hub, At: c.now().UTC()} })
}

// putAll records many devices at once (devices lists whole hubs).
func (c *deviceCache) putAll(m map[string]string) error {
	return c.update(func(f *cacheFile) {
		for d, h := range m {
			f.Devices[d] = cacheEntry{Hub: h, At: c.now().UTC()}
		}
	})
}

func (c *deviceCache) drop(device string) {
	_ = c.update(func(f *cacheFile) { delete(f.Devices, device) })
}

// maxCached bounds the cache file; the oldest entries go first.
const maxCached = 20000

func (c *deviceCache) update(fn func(*cacheFile)) error {
	if c.path == "" {
		return errors.New("no cache directory")
	}
	f := c.load()
	fn(&f)
	if len(f.Devices) > maxCached {
		ids := make([]string, 0, len(f.Devices))
		for id := range f.Devices {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b string) int { return f.Devices[a].At.Compare(f.Devices[b].At) })
		for _, id := range ids[:len(ids)-maxCached] {
			delete(f.Devices, id)
		}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path, b)
}

// writeFileAtomic writes data to path with mode 0600 (see writeSecret),
// creating path's directory (0700) if need be.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeSecret(path, string(data))
}

// writeSecret replaces path with data, mode 0600, whole or not at all: a
// temporary file in the same directory, fsync, rename, fsync of the
// directory. A failed write (a full disk) leaves the old file as it was.
func writeSecret(path, data string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone by then after a rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // not supported everywhere (Windows)
		d.Close()
	}
	return nil
}
