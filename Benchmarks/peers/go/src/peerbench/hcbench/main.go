// Command hcbench measures hashicorp/raft at library level, the counterpart of our
// raft-node-bench over TCP: three raft.Raft nodes in this process, each with a raft-boltdb
// store (fsync on every write, BoltDB's default) in a directory of its own, a file snapshot
// store and a TCP transport on 127.0.0.1. -proposers goroutines call Apply on the leader with a
// -payload-byte command and wait for its future; the state machine counts what it applies.
// Prints one RESULT line with the process's CPU seconds in the measured window.
//
//	hcbench -proposers 64 -duration 10s -dir /tmp
package main

import (
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"
	"peerbench/load"
)

// counter is the state machine: it counts applied entries and their bytes.
type counter struct{ entries, bytes atomic.Int64 }

func (c *counter) Apply(l *raft.Log) interface{} {
	c.entries.Add(1)
	c.bytes.Add(int64(len(l.Data)))
	return nil
}

func (c *counter) Snapshot() (raft.FSMSnapshot, error) {
	return &counterSnapshot{entries: c.entries.Load(), bytes: c.bytes.Load()}, nil
}

func (c *counter) Restore(r io.ReadCloser) error {
	defer r.Close()
	var entries, size int64
	if _, err := fmt.Fscan(r, &entries, &size); err != nil {
		return err
	}
	c.entries.Store(entries)
	c.bytes.Store(size)
	return nil
}

type counterSnapshot struct{ entries, bytes int64 }

func (s *counterSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := fmt.Fprintf(sink, "%d %d\n", s.entries, s.bytes); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *counterSnapshot) Release() {}

type node struct {
	raft  *raft.Raft
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
}

func main() {
	proposers := flag.Int("proposers", 1, "concurrent proposers (goroutines calling Apply and waiting for the future)")
	payload := flag.Int("payload", 144, "command size in bytes (16-byte key + 128-byte value)")
	duration := flag.Duration("duration", 10*time.Second, "measured time")
	warmup := flag.Duration("warmup", time.Second, "unmeasured time before it")
	parent := flag.String("dir", os.TempDir(), "where to create the temporary directory (removed at the end)")
	maxAppend := flag.Int("max-append-entries", raft.DefaultConfig().MaxAppendEntries, "raft.Config.MaxAppendEntries (1..1024)")
	flag.Parse()
	if *proposers < 1 || *payload < 1 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "hcbench: need -proposers >= 1, -payload >= 1, -duration > 0")
		os.Exit(64)
	}
	root, err := ioutil.TempDir(*parent, "hcbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hcbench:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(root)
	code := run(root, *proposers, *payload, *maxAppend, *warmup, *duration)
	if code != 0 {
		os.RemoveAll(root)
		os.Exit(code)
	}
}

func run(root string, proposers, payload, maxAppend int, warmup, duration time.Duration) int {
	nodes, err := startCluster(root, maxAppend)
	defer func() {
		for _, n := range nodes {
			if n.raft != nil {
				n.raft.Shutdown().Error()
			}
			n.trans.Close()
			n.store.Close()
		}
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hcbench:", err)
		return 1
	}
	leader := waitForLeader(nodes, 15*time.Second)
	if leader == nil {
		fmt.Fprintln(os.Stderr, "hcbench: no leader within 15 s")
		return 1
	}
	fmt.Printf("hashicorp/raft: 3 nodes over TCP on 127.0.0.1, raft-boltdb under %s, leader %s, %d-byte commands, MaxAppendEntries %d\n",
		root, leader.raft.String(), payload, maxAppend)
	command := load.Value(payload, "hcbench")
	r := load.Run(proposers, warmup, duration, func(int) error {
		return leader.raft.Apply(command, 10*time.Second).Error()
	})
	fmt.Println(r.Line("hashicorp-raft", proposers))
	return 0
}

func startCluster(root string, maxAppend int) ([]*node, error) {
	var nodes []*node
	var servers []raft.Server
	for i := 1; i <= 3; i++ {
		trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, ioutil.Discard)
		if err != nil {
			return nodes, err
		}
		dir := filepath.Join(root, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			trans.Close()
			return nodes, err
		}
		store, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
		if err != nil {
			trans.Close()
			return nodes, err
		}
		nodes = append(nodes, &node{store: store, trans: trans})
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprint(i)), Address: trans.LocalAddr()})
	}
	configuration := raft.Configuration{Servers: servers}
	for i, n := range nodes {
		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.LogOutput = ioutil.Discard
		conf.LogLevel = "ERROR"
		conf.MaxAppendEntries = maxAppend
		// No snapshot inside a run: the log is kept whole, as in raft-node-bench.
		conf.SnapshotThreshold = 1 << 40
		conf.SnapshotInterval = 24 * time.Hour
		snaps, err := raft.NewFileSnapshotStore(filepath.Join(root, fmt.Sprintf("node%d", i+1)), 1, ioutil.Discard)
		if err != nil {
			return nodes, err
		}
		if err := raft.BootstrapCluster(conf, n.store, n.store, snaps, n.trans, configuration); err != nil {
			return nodes, err
		}
		r, err := raft.NewRaft(conf, &counter{}, n.store, n.store, snaps, n.trans)
		if err != nil {
			return nodes, err
		}
		n.raft = r
	}
	return nodes, nil
}

func waitForLeader(nodes []*node, limit time.Duration) *node {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.raft != nil && n.raft.State() == raft.Leader {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
