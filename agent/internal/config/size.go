package config

import (
	"errors"
	"strconv"
	"strings"
)

// sizeUnits maps a unit suffix to its multiplier. Binary units (KiB) are
// what flash sizes are quoted in; decimal ones (KB) are accepted too.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"kib": 1 << 10,
	"mb":  1000 * 1000,
	"mib": 1 << 20,
	"gb":  1000 * 1000 * 1000,
	"gib": 1 << 30,
	"k":   1 << 10,
	"m":   1 << 20,
	"g":   1 << 30,
}

var errSize = errors.New("not a size")

// ParseSize parses a byte size such as "512KiB", "1MiB", "64 KB" or "4096".
// Units are case-insensitive; K/M/G alone mean KiB/MiB/GiB. Only whole
// numbers are accepted.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 {
		return 0, errSize
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, errSize
	}
	unit := strings.ToLower(strings.TrimSpace(s[i:]))
	mul, ok := sizeUnits[unit]
	if !ok {
		return 0, errSize
	}
	if n > (1<<62)/mul {
		return 0, errSize
	}
	return n * mul, nil
}

// FormatSize renders n with the largest binary unit that divides it.
func FormatSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10) + "B"
}
