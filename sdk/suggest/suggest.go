package suggest

import "strings"

// Closest returns the known key closest to got (compared in lower case),
// or "" when none is close enough to be a likely typo: at most 1 edit for
// keys under 4 characters, 2 from 4, 3 from 8. known is expected in lower
// case.
func Closest(got string, known []string) string {
	best, bestD := "", 1<<30
	lower := strings.ToLower(got)
	for _, k := range known {
		if d := editDistance(lower, k); d < bestD {
			best, bestD = k, d
		}
	}
	limit := 1
	switch {
	case len(got) >= 8:
		limit = 3
	case len(got) >= 4:
		limit = 2
	}
	if bestD <= limit {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20 // keys are short; a huge key is nobody's typo
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
