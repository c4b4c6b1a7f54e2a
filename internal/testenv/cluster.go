package testenv

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
)

// Cluster is a NATS cluster with JetStream, every server in this process on
// loopback, for tests of replicated streams and of a server dying.
type Cluster struct {
	t       testing.TB
	Servers []*server.Server
	opts    []*server.Options
}

// NATSCluster starts n NATS servers with JetStream routed into one cluster
// and waits until JetStream has elected its meta leader.
func NATSCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		ports[i] = FreePort(t)
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	for i := range n {
		opts := natsserver.DefaultTestOptions
		opts.ServerName = fmt.Sprintf("n%d", i+1)
		opts.Host = "127.0.0.1"
		opts.Port = -1
		opts.JetStream = true
		opts.StoreDir = t.TempDir()
		opts.NoLog, opts.NoSigs = true, true
		opts.Cluster = server.ClusterOpts{Name: "care", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		c.opts = append(c.opts, &opts)
		s := natsserver.RunServer(&opts)
		c.Servers = append(c.Servers, s)
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			s.Shutdown()
		}
	})
	WaitFor(t, 30*time.Second, "the JetStream meta leader", func() bool {
		for _, s := range c.Servers {
			if s.Running() && s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return c
}

// URLs is the cluster's client URLs as one comma-separated list, as
// CARE_NATS_URL takes it.
func (c *Cluster) URLs() string {
	var urls []string
	for _, s := range c.Servers {
		if s.Running() {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// Kill stops server i at once, as a crashed node.
func (c *Cluster) Kill(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
}

// Index returns the position of the server named name, or -1.
func (c *Cluster) Index(name string) int {
	for i, s := range c.Servers {
		if s.Name() == name {
			return i
		}
	}
	return -1
}
