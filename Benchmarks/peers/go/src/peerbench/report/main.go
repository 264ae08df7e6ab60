// Command report turns the RESULT lines of one run of Benchmarks/peers/run.sh into the
// Markdown report: one table of every system at every concurrency (median ops/s and its range
// over the repeats, median p50/p99/p99.9, CPU seconds per 1,000 operations, our ratio to each
// peer), then the targets with MET or MISSED.
//
//	report -raw results.txt -meta meta.txt > report.md
//
// Each line of -raw is "RESULT key=value ..." with at least system, level, repeat, ops,
// errors, seconds, p50_ms, p99_ms, p999_ms and cpu_s (the servers' CPU seconds, or the
// process's own for a library-level run), plus busy (the CPU busy percentage the idle check
// saw before the point). Each line of -meta is printed as it is, as a bullet, under the title.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// system is one row group of the table.
type system struct {
	name, title string
	// ours is the system of ours this one is compared with ("" for our own rows).
	ours string
}

var systems = []system{
	{"kvstore-put", "ours: kvstore PUT (HTTP, wrk; answered once committed and applied)", ""},
	{"etcd-grpc-put", "etcd 3.4 put, gRPC (clientv3)", "kvstore-put"},
	{"etcd-json-put", "etcd 3.4 put, JSON gateway (wrk)", "kvstore-put"},
	{"raftexample-put-visible", "raftexample PUT until visible (rxload)", "kvstore-put"},
	{"raftexample-put", "raftexample PUT (wrk; answered BEFORE commit)", "kvstore-put"},
	{"kvstore-get", "ours: kvstore GET linearizable (HTTP, wrk)", ""},
	{"etcd-grpc-get", "etcd 3.4 get linearizable, gRPC (clientv3)", "kvstore-get"},
	{"etcd-json-get", "etcd 3.4 range linearizable, JSON gateway (wrk)", "kvstore-get"},
	{"raft-node-bench-tcp", "ours: raft-node-bench, 3 RaftNodes over TCP (library)", ""},
	{"hashicorp-raft", "hashicorp/raft 1.1.2 + raft-boltdb (library)", "raft-node-bench-tcp"},
}

// point is the summary of one system at one level over its repeats.
type point struct {
	runs                   int
	rate, minRate, maxRate float64
	p50, p99, p999         float64
	cpuPerK                float64
	errors                 int
	busy                   float64 // the highest busy percentage seen before a repeat
}

func main() {
	rawPath := flag.String("raw", "", "the RESULT lines")
	metaPath := flag.String("meta", "", "lines to print under the title")
	title := flag.String("title", "Peers benchmark", "the report's title")
	busyLimit := flag.Float64("busy-limit", 20, "an idle check above this CPU busy percentage is flagged")
	flag.Parse()
	rows, err := readResults(*rawPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	fmt.Printf("# %s\n\n", *title)
	if *metaPath != "" {
		if lines, err := readLines(*metaPath); err == nil {
			for _, l := range lines {
				fmt.Println("- " + l)
			}
			fmt.Println()
		}
	}
	points := summarize(rows)
	printTable(points, *busyLimit)
	fmt.Println()
	printTargets(points)
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if t := strings.TrimSpace(s.Text()); t != "" {
			lines = append(lines, t)
		}
	}
	return lines, s.Err()
}

func readResults(path string) ([]map[string]string, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	var rows []map[string]string
	for _, l := range lines {
		fields := strings.Fields(l)
		if len(fields) == 0 || fields[0] != "RESULT" {
			continue
		}
		row := map[string]string{}
		for _, f := range fields[1:] {
			if k, v, ok := strings.Cut(f, "="); ok {
				row[k] = v
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func number(row map[string]string, key string) float64 {
	v, err := strconv.ParseFloat(row[key], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

func median(xs []float64) float64 {
	var clean []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			clean = append(clean, x)
		}
	}
	if len(clean) == 0 {
		return math.NaN()
	}
	sort.Float64s(clean)
	n := len(clean)
	if n%2 == 1 {
		return clean[n/2]
	}
	return (clean[n/2-1] + clean[n/2]) / 2
}

type key struct {
	system string
	level  int
}

func summarize(rows []map[string]string) map[key]point {
	grouped := map[key][]map[string]string{}
	for _, r := range rows {
		level, err := strconv.Atoi(r["level"])
		if err != nil {
			continue
		}
		k := key{r["system"], level}
		grouped[k] = append(grouped[k], r)
	}
	points := map[key]point{}
	for k, rs := range grouped {
		var rates, p50s, p99s, p999s, cpus []float64
		p := point{runs: len(rs), minRate: math.Inf(1), maxRate: math.Inf(-1)}
		for _, r := range rs {
			ops, seconds := number(r, "ops"), number(r, "seconds")
			rate := ops / seconds
			if seconds <= 0 || math.IsNaN(rate) {
				rate = 0
			}
			rates = append(rates, rate)
			p.minRate = math.Min(p.minRate, rate)
			p.maxRate = math.Max(p.maxRate, rate)
			p50s = append(p50s, number(r, "p50_ms"))
			p99s = append(p99s, number(r, "p99_ms"))
			p999s = append(p999s, number(r, "p999_ms"))
			if ops > 0 {
				cpus = append(cpus, 1000*number(r, "cpu_s")/ops)
			}
			p.errors += int(number(r, "errors"))
			if b := number(r, "busy"); !math.IsNaN(b) {
				p.busy = math.Max(p.busy, b)
			}
		}
		p.rate, p.p50, p.p99, p.p999, p.cpuPerK = median(rates), median(p50s), median(p99s), median(p999s), median(cpus)
		points[k] = p
	}
	return points
}

func levels(points map[key]point) []int {
	seen := map[int]bool{}
	var out []int
	for k := range points {
		if !seen[k.level] {
			seen[k.level] = true
			out = append(out, k.level)
		}
	}
	sort.Ints(out)
	return out
}

func ms(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func rate(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func printTable(points map[key]point, busyLimit float64) {
	fmt.Println("Medians over the repeats; range = lowest to highest ops/s. CPU s/1k ops: the servers' user + system")
	fmt.Println("CPU seconds per 1,000 completed operations (library level: the whole benchmark process, proposers included).")
	fmt.Println("ours/peer: our ops/s divided by this row's at the same concurrency, and the two p99s (ours vs this row's).")
	fmt.Printf("busy: the highest CPU busy %% of the idle check before a repeat (! above %.0f%%: the machine was not idle).\n\n", busyLimit)
	fmt.Println("| system | conns | ops/s | range | p50 ms | p99 ms | p99.9 ms | CPU s/1k ops | ours/peer | p99 ours vs peer | errors | busy |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range systems {
		for _, l := range levels(points) {
			p, ok := points[key{s.name, l}]
			if !ok {
				continue
			}
			ratio, p99 := "-", "-"
			if o, ok := points[key{s.ours, l}]; ok && s.ours != "" {
				if p.rate > 0 {
					ratio = fmt.Sprintf("%.2f×", o.rate/p.rate)
				}
				p99 = ms(o.p99) + " vs " + ms(p.p99)
			}
			flag := ""
			if p.busy > busyLimit {
				flag = "!"
			}
			fmt.Printf("| %s | %d | %s | %s–%s | %s | %s | %s | %s | %s | %s | %d | %.0f%%%s |\n",
				s.title, l, rate(p.rate), rate(p.minRate), rate(p.maxRate), ms(p.p50), ms(p.p99), ms(p.p999),
				cpu(p.cpuPerK), ratio, p99, p.errors, p.busy, flag)
		}
	}
}

func cpu(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.3f", x)
}

func verdict(met bool) string {
	if met {
		return "MET"
	}
	return "MISSED"
}

func printTargets(points map[key]point) {
	fmt.Println("Targets (issue 11), judged on the medians of this run:")
	fmt.Println()
	get := func(s string, l int) (point, bool) { p, ok := points[key{s, l}]; return p, ok && p.rate > 0 }
	// target prints one line: the figures when both systems were measured, else why not.
	target := func(text string, ours, peer string, level int, figures func(o, p point) (string, bool)) {
		o, ok1 := get(ours, level)
		p, ok2 := get(peer, level)
		if !ok1 || !ok2 {
			var missing []string
			if !ok1 {
				missing = append(missing, ours)
			}
			if !ok2 {
				missing = append(missing, peer)
			}
			fmt.Printf("- %s -> NOT MEASURED (no %s at %d)\n", text, strings.Join(missing, ", no "), level)
			return
		}
		detail, met := figures(o, p)
		fmt.Printf("- %s: %s -> %s\n", text, detail, verdict(met))
	}
	throughput := func(factor float64) func(o, p point) (string, bool) {
		return func(o, p point) (string, bool) {
			return fmt.Sprintf("%s/s vs %s/s = %.2f×", rate(o.rate), rate(p.rate), o.rate/p.rate), o.rate >= factor*p.rate
		}
	}
	for _, l := range []int{64, 256} {
		target(fmt.Sprintf("%d connections: kvstore PUT >= 5× etcd gRPC put ops/s with a lower p99", l), "kvstore-put", "etcd-grpc-put", l,
			func(o, p point) (string, bool) {
				return fmt.Sprintf("%s/s vs %s/s = %.2f×, p99 %s vs %s ms", rate(o.rate), rate(p.rate), o.rate/p.rate, ms(o.p99), ms(p.p99)),
					o.rate >= 5*p.rate && o.p99 < p.p99
			})
	}
	lowerP50 := func(o, p point) (string, bool) {
		return fmt.Sprintf("p50 %s vs %s ms", ms(o.p50), ms(p.p50)), o.p50 < p.p50
	}
	target("1 connection: kvstore PUT p50 lower than etcd gRPC put's", "kvstore-put", "etcd-grpc-put", 1, lowerP50)
	target("(beside it, not a target: the same against etcd's JSON gateway)", "kvstore-put", "etcd-json-put", 1, lowerP50)
	for _, l := range []int{1, 16, 64, 256} {
		target(fmt.Sprintf("%d connections: kvstore PUT >= 2× raftexample put-visible ops/s", l), "kvstore-put", "raftexample-put-visible", l, throughput(2))
	}
	for _, l := range []int{64, 256} {
		target(fmt.Sprintf("%d proposers, library level: raft-node-bench (TCP) >= 5× hashicorp/raft ops/s", l), "raft-node-bench-tcp", "hashicorp-raft", l, throughput(5))
	}
}
