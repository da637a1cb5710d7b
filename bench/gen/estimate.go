package gen

import (
	"math/rand/v2"
	"slices"
)

// User-estimate model parameters (after Tsafrir, Etsion and Feitelson).
const (
	// killProb is the share of jobs that reach their requested time and
	// are killed there (the user under-estimated).
	killProb = 0.08
	// blindProb is the share of requests that do not follow the run time
	// at all: a habitual large value (the queue's limit, "a day"), so the
	// job's accuracy run/request is near zero.
	blindProb = 0.2
	// repeatProb is how often a user resubmits the kind of job they
	// submitted last (same size and request, a similar run time): the
	// repetition that makes per-user predictions work on real logs.
	repeatProb = 0.6
	// maxRun caps run times and requests (the longest queue limit).
	maxRun = 48 * 3600
)

// roundValues are the requested times users choose, in seconds: the
// popular round values of real logs, up to the 48 h limit.
var roundValues = []int64{
	60, 300, 600, 900, 1200, 1800, 3600, 2 * 3600, 3 * 3600, 4 * 3600, 5 * 3600, 6 * 3600,
	8 * 3600, 10 * 3600, 12 * 3600, 16 * 3600, 18 * 3600, 24 * 3600, 36 * 3600, maxRun,
}

// blindValues are the habitual requests of blindProb, with their weights.
var blindValues = []struct {
	s int64
	w float64
}{{3600, 1}, {4 * 3600, 1}, {12 * 3600, 1.5}, {24 * 3600, 2}, {maxRun, 1.5}}

// request draws the requested time for a job that would run run seconds
// and returns it with the run time it really gets (the request, when the
// job is killed at its limit).
func request(rng *rand.Rand, run int64) (req, actual int64) {
	x := rng.Float64()
	switch {
	case x < killProb:
		// Killed: the request is the round value below the run time.
		i, _ := slices.BinarySearch(roundValues, run+1)
		req = roundValues[max(i-1, 0)]
		return req, min(run, req)
	case x < killProb+blindProb:
		var tot float64
		for _, b := range blindValues {
			tot += b.w
		}
		y := rng.Float64() * tot
		for _, b := range blindValues {
			if y -= b.w; y < 0 {
				req = b.s
				break
			}
		}
		if req == 0 {
			req = maxRun
		}
	default:
		// The user's guess: the run time over an accuracy uniform in
		// [0.1, 1), rounded up to a popular value.
		req = int64(float64(run) / (0.1 + 0.9*rng.Float64()))
	}
	return roundUp(max(req, run)), run
}

// roundUp returns the smallest round value at least s (maxRun above all).
func roundUp(s int64) int64 {
	i, _ := slices.BinarySearch(roundValues, s)
	if i == len(roundValues) {
		return maxRun
	}
	return roundValues[i]
}
