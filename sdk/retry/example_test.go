package retry_test

import (
	"context"
	"fmt"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
)

// A DPS registration that is throttled once and then succeeds. The fake
// clock stands in for real time; in production leave Clock and Rand nil.
func ExampleDo() {
	clk := retrytest.NewClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	policy := retry.Policy{
		Clock:            clk,
		RetryAfterJitter: -1, // wait exactly what the service asks
		GiveUpAfter:      15 * time.Minute,
		Notify: func(err error, wait time.Duration) {
			fmt.Printf("attempt failed (%v); retrying in %v\n", err, wait)
		},
	}
	go func() { // play the passing of time
		d, _ := clk.WaitTimer(context.Background())
		clk.Advance(d)
	}()

	attempts := 0
	err := retry.Do(context.Background(), policy, func(ctx context.Context) error {
		attempts++
		if attempts == 1 {
			return &retry.StatusError{Code: 429, RetryAfter: 3 * time.Second, HasRetryAfter: true}
		}
		return nil // registered
	})
	fmt.Println("attempts:", attempts, "err:", err)
	// Output:
	// attempt failed (status 429 Too Many Requests (retry after 3s)); retrying in 3s
	// attempts: 2 err: <nil>
}

// Classify is what the agent uses to choose between "keep retrying the
// cached hub" and "go back to DPS".
func ExampleClassify() {
	for _, code := range []int{429, 503, 401} {
		d := retry.Classify(&retry.StatusError{Code: code})
		fmt.Println(code, d.Kind)
	}
	// Output:
	// 429 backoff
	// 503 backoff
	// 401 permanent
}
