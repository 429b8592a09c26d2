package retrytest

import (
	"math/rand/v2"
	"sync"
)

// Rand returns a deterministic, concurrency-safe source of uniform values
// in [0, 1) for retry.Policy.Rand.
func Rand(seed uint64) func() float64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64()
	}
}
