// Package load runs a fixed number of workers for a fixed time and summarizes what they saw:
// completed operations, failures and latency percentiles. Every program of the peers
// benchmark prints its result through Result.Line, one "RESULT key=value ..." line that
// Benchmarks/peers/run.sh reads.
package load

import (
	"flag"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// KeyCount is the size of the key space every load generator draws from (the wrk script uses
// the same number).
const KeyCount = 1000

// Key returns key i of the key space: "key-" and 12 digits, 16 bytes.
func Key(i int) string { return fmt.Sprintf("key-%012d", i%KeyCount) }

// Value returns a value of n bytes that starts with tag (cut to n) and is padded with 'v'.
func Value(n int, tag string) []byte {
	b := []byte(strings.Repeat("v", n))
	copy(b, tag)
	return b
}

// Flags are the command-line flags every load generator takes.
type Flags struct {
	Clients    *int
	ValueBytes *int
	Duration   *time.Duration
	Warmup     *time.Duration
	System     *string
}

// CommonFlags defines the shared flags on the default flag set; call flag.Parse after it.
func CommonFlags(system, clients string) Flags {
	return Flags{
		Clients:    flag.Int("clients", 1, clients),
		ValueBytes: flag.Int("value-bytes", 128, "value size in bytes"),
		Duration:   flag.Duration("duration", 10*time.Second, "measured time"),
		Warmup:     flag.Duration("warmup", 0, "unmeasured time before it"),
		System:     flag.String("system", system, "name in the RESULT line"),
	}
}

// Result is what a run measured.
type Result struct {
	Ops     int
	Errors  int
	Seconds float64
	// Latency percentiles in milliseconds (nearest rank); NaN without operations.
	P50, P99, P999 float64
	// This process's CPU seconds (user + system) inside the measured window.
	SelfCPU float64
}

// Rate is completed operations per second.
func (r Result) Rate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Seconds
}

// Line is the result as one line: RESULT system=S level=N ops=... plus any extra key=value
// fields, in the format every program of the benchmark prints.
func (r Result) Line(system string, level int, extra ...string) string {
	fields := []string{
		"RESULT", "system=" + system, fmt.Sprintf("level=%d", level),
		fmt.Sprintf("ops=%d", r.Ops), fmt.Sprintf("errors=%d", r.Errors), fmt.Sprintf("seconds=%.3f", r.Seconds),
		fmt.Sprintf("p50_ms=%.3f", r.P50), fmt.Sprintf("p99_ms=%.3f", r.P99), fmt.Sprintf("p999_ms=%.3f", r.P999),
		fmt.Sprintf("self_cpu_s=%.3f", r.SelfCPU),
	}
	return strings.Join(append(fields, extra...), " ")
}

// Percentile returns the nearest-rank percentile p (0 < p <= 1) of sorted latencies, in ms.
func Percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return nan()
	}
	rank := int(p*float64(len(sorted)) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return float64(sorted[rank-1]) / float64(time.Millisecond)
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

// Op is one operation of worker number worker (0 ..< workers); an error counts it as failed.
type Op func(worker int) error

// Run starts workers goroutines, each calling op in a loop, for warmup and then for measure.
// An operation counts when it completes inside the measured window; its latency is the time
// op took. Run waits for every worker to finish its last operation before it returns.
func Run(workers int, warmup, measure time.Duration, op Op) Result {
	const (
		warming = iota
		measuring
		stopped
	)
	var phase atomic.Int32
	phase.Store(warming)
	latencies := make([][]time.Duration, workers)
	failures := make([]int, workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for phase.Load() != stopped {
				t0 := time.Now()
				err := op(i)
				d := time.Since(t0)
				if phase.Load() != measuring {
					continue
				}
				if err != nil {
					failures[i]++
				} else {
					latencies[i] = append(latencies[i], d)
				}
			}
		}(i)
	}
	time.Sleep(warmup)
	cpu0 := CPUSeconds()
	start := time.Now()
	phase.Store(measuring)
	time.Sleep(measure)
	phase.Store(stopped)
	elapsed := time.Since(start)
	cpu1 := CPUSeconds()
	wg.Wait()
	var all []time.Duration
	failed := 0
	for i := range latencies {
		all = append(all, latencies[i]...)
		failed += failures[i]
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return Result{
		Ops: len(all), Errors: failed, Seconds: elapsed.Seconds(),
		P50: Percentile(all, 0.5), P99: Percentile(all, 0.99), P999: Percentile(all, 0.999),
		SelfCPU: cpu1 - cpu0,
	}
}

// CPUSeconds is this process's CPU time so far (user + system).
func CPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return nan()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
