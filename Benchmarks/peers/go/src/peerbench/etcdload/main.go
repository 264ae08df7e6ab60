// Command etcdload loads an etcd cluster through its gRPC API (clientv3): -clients goroutines,
// each with one request in flight, sharing -conns client connections, put or get 16-byte keys
// with 128-byte values for -duration, then prints one RESULT line.
//
//	etcdload -endpoints http://127.0.0.1:32379 -clients 64 -mode put -duration 10s
//
// Gets are linearizable (clientv3's default; -serializable for local reads).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
	"peerbench/load"
)

func main() {
	common := load.CommonFlags("", "concurrent requests (goroutines, one request in flight each)")
	endpoints := flag.String("endpoints", "http://127.0.0.1:2379", "comma-separated client URLs")
	conns := flag.Int("conns", 0, "gRPC connections shared by the clients (0: one per 8 clients, at least one)")
	mode := flag.String("mode", "put", "put or get")
	serializable := flag.Bool("serializable", false, "serializable (local) gets instead of linearizable ones")
	timeout := flag.Duration("timeout", 5*time.Second, "timeout of one request (a request that times out counts as failed)")
	flag.Parse()
	clients, valueBytes, system := common.Clients, common.ValueBytes, common.System
	if *clients < 1 || *valueBytes < 0 || *common.Duration <= 0 || (*mode != "put" && *mode != "get") {
		fmt.Fprintln(os.Stderr, "etcdload: need -clients >= 1, -value-bytes >= 0, -duration > 0, -mode put|get")
		os.Exit(64)
	}
	if *conns <= 0 {
		*conns = (*clients + 7) / 8
	}
	if *conns > *clients {
		*conns = *clients
	}
	if *system == "" { // the default depends on -mode
		*system = "etcd-grpc-" + *mode
	}

	kvs := make([]*clientv3.Client, *conns)
	for i := range kvs {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second})
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcdload: cannot connect:", err)
			os.Exit(1)
		}
		defer c.Close()
		kvs[i] = c
	}
	value := string(load.Value(*valueBytes, "etcdload"))
	var getOptions []clientv3.OpOption
	if *serializable {
		getOptions = append(getOptions, clientv3.WithSerializable())
	}
	seq := make([]int, *clients)
	op := func(worker int) error {
		seq[worker]++
		key := load.Key(worker*7919 + seq[worker])
		c := kvs[worker%len(kvs)]
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		var err error
		if *mode == "put" {
			_, err = c.Put(ctx, key, value)
		} else {
			_, err = c.Get(ctx, key, getOptions...)
		}
		return err
	}
	r := load.Run(*clients, *common.Warmup, *common.Duration, op)
	fmt.Println(r.Line(*system, *clients, fmt.Sprintf("conns=%d", *conns)))
	if r.Ops == 0 {
		os.Exit(1)
	}
}
