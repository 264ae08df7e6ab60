// Command rxload measures etcd's raftexample the way a client that needs its write to be
// durable and visible would: each of -clients goroutines PUTs a fresh value under a key of its
// own, then GETs the key from the same node until it reads that value back. One operation is
// PUT to visible; raftexample answers the PUT before the write commits, so the PUT's own answer
// proves nothing.
//
//	rxload -url http://127.0.0.1:39121 -clients 64 -duration 10s
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"peerbench/load"
)

func main() {
	common := load.CommonFlags("raftexample-put-visible", "concurrent writers, each with a key of its own")
	url := flag.String("url", "http://127.0.0.1:9121", "the raftexample node's HTTP address (PUTs and GETs both go there)")
	visibleTimeout := flag.Duration("visible-timeout", 10*time.Second, "a write not visible after this counts as failed")
	flag.Parse()
	clients, valueBytes := common.Clients, common.ValueBytes
	if *clients < 1 || *clients > load.KeyCount || *valueBytes < 24 || *common.Duration <= 0 {
		fmt.Fprintf(os.Stderr, "rxload: need 1 <= -clients <= %d, -value-bytes >= 24 (to hold the writer and sequence number), -duration > 0\n", load.KeyCount)
		os.Exit(64)
	}
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: *clients, MaxConnsPerHost: *clients, DisableCompression: true},
		Timeout:   5 * time.Second,
	}
	var gets atomic.Int64
	seq := make([]int, *clients)
	op := func(worker int) error {
		seq[worker]++
		key := load.Key(worker)
		value := load.Value(*valueBytes, fmt.Sprintf("w%05d-s%012d-", worker, seq[worker]))
		if err := request(client, http.MethodPut, *url+"/"+key, value, http.StatusNoContent, nil); err != nil {
			return err
		}
		// Poll: at once, then after 250 µs, doubling up to 4 ms between reads.
		deadline := time.Now().Add(*visibleTimeout)
		pause := 250 * time.Microsecond
		for {
			var body []byte
			gets.Add(1)
			if err := request(client, http.MethodGet, *url+"/"+key, nil, http.StatusOK, &body); err != nil && !errors.Is(err, errNotFound) {
				return err
			}
			if bytes.Equal(body, value) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not visible after %v", key, *visibleTimeout)
			}
			time.Sleep(pause)
			if pause < 4*time.Millisecond {
				pause *= 2
			}
		}
	}
	r := load.Run(*clients, *common.Warmup, *common.Duration, op)
	perOp := 0.0
	if r.Ops > 0 {
		perOp = float64(gets.Load()) / float64(r.Ops)
	}
	fmt.Println(r.Line(*common.System, *clients, fmt.Sprintf("gets_per_op=%.2f", perOp)))
	if r.Ops == 0 {
		os.Exit(1)
	}
}

var errNotFound = errors.New("not found")

// request sends one request and checks its status; a 404 (the key not written yet) is
// errNotFound. With into, the body is read into it.
func request(client *http.Client, method, url string, body []byte, want int, into *[]byte) error {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode != want:
		return fmt.Errorf("%s %s: status %d", method, url, resp.StatusCode)
	}
	if into != nil {
		*into = data
	}
	return nil
}
