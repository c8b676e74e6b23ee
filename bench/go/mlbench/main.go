// Command mlbench is the Go half of `headcount bench`: N hashicorp/memberlist
// nodes in one process on 127.0.0.1, node i joining node 0 at start; at
// -kill-at the first K nodes are shut down without leaving. It prints one
// JSON line with the same fields, measured the same way, as
// `headcount bench` (see crates/headcount-cli/src/bench.rs and
// docs/benchmarks.md):
//
//   - membership is followed through the event delegate (join adds a name
//     to the observer's alive set, leave removes it), polled every 20 ms;
//   - CPU is user + system time of the whole process from /proc/self/stat,
//     peak memory is VmHWM from /proc/self/status;
//   - bytes are what the nodes send: every transport WriteTo (UDP) and every
//     byte written to a TCP stream, dialed or accepted, counted by a
//     Transport wrapper around memberlist.NetTransport.
//
// With -agent it is instead one node of the per-process benchmark
// (bench/perprocess.py): one memberlist node in this process, joining
// -join once, printing {"event":"join"|"leave","node":NAME} JSON lines on
// stdout for its event delegate's NotifyJoin and NotifyLeave, as
// `headcount agent` does, until it is killed.
//
// Built offline in GOPATH mode against Debian's packaged memberlist; see
// bench/run.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

const poll = 20 * time.Millisecond

// ------------------------------------------------------------ transport

// countingTransport wraps a NetTransport and counts the bytes it sends.
type countingTransport struct {
	inner    *memberlist.NetTransport
	udpBytes uint64
	tcpBytes uint64
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once
}

func newCountingTransport(inner *memberlist.NetTransport) *countingTransport {
	t := &countingTransport{
		inner:    inner,
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	go func() {
		for {
			select {
			case c := <-inner.StreamCh():
				select {
				case t.streamCh <- &countingConn{Conn: c, n: &t.tcpBytes}:
				case <-t.done:
					c.Close()
					return
				}
			case <-t.done:
				return
			}
		}
	}()
	return t
}

func (t *countingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	atomic.AddUint64(&t.udpBytes, uint64(len(b)))
	return t.inner.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	atomic.AddUint64(&t.udpBytes, uint64(len(b)))
	return t.inner.WriteToAddress(b, a)
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.inner.PacketCh() }

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.tcpBytes}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.tcpBytes}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *countingTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	return t.inner.Shutdown()
}

// countingConn counts the bytes handed to Write.
type countingConn struct {
	net.Conn
	n *uint64
}

func (c *countingConn) Write(b []byte) (int, error) {
	atomic.AddUint64(c.n, uint64(len(b)))
	return c.Conn.Write(b)
}

// ------------------------------------------------------------ views

type shared struct {
	doomed      map[string]bool
	killed      int32
	falseLeaves uint64
}

// view is one node's alive set, kept by its event delegate: one flag per
// harness node, by the index i of its name "node-i" (as headcount's bench
// and the al8n twin), so the harness's N views of N members do not count
// as the nodes' memory.
type view struct {
	sh    *shared
	mu    sync.Mutex
	alive []bool
	count int
}

// nodeIndex is the i of a harness node's name "node-i", or -1.
func nodeIndex(name string) int {
	if !strings.HasPrefix(name, "node-") {
		return -1
	}
	i, err := strconv.Atoi(name[len("node-"):])
	if err != nil || i < 0 {
		return -1
	}
	return i
}

func (v *view) set(name string, on bool) {
	i := nodeIndex(name)
	if i < 0 || i >= len(v.alive) || v.alive[i] == on {
		return
	}
	v.alive[i] = on
	if on {
		v.count++
	} else {
		v.count--
	}
}

func (v *view) NotifyJoin(n *memberlist.Node) {
	v.mu.Lock()
	v.set(n.Name, true)
	v.mu.Unlock()
}

func (v *view) NotifyLeave(n *memberlist.Node) {
	v.mu.Lock()
	v.set(n.Name, false)
	v.mu.Unlock()
	if !(atomic.LoadInt32(&v.sh.killed) == 1 && v.sh.doomed[n.Name]) {
		atomic.AddUint64(&v.sh.falseLeaves, 1)
	}
}

func (v *view) NotifyUpdate(*memberlist.Node) {}

func (v *view) size() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.count
}

func (v *view) holdsAny(names map[string]bool) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for n := range names {
		if i := nodeIndex(n); i >= 0 && i < len(v.alive) && v.alive[i] {
			return true
		}
	}
	return false
}

// ------------------------------------------------------------ process

// cpuSeconds is user + system time from /proc/self/stat (USER_HZ = 100).
func cpuSeconds() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	k, _ := strconv.ParseUint(f[12], 10, 64)
	return float64(u+k) / 100
}

// statusKiB is a field of /proc/self/status in KiB (VmHWM: peak resident
// set size, VmRSS: current).
func statusKiB(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			v := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(l[len(field):]), "kB"))
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

type report struct {
	Implementation   string   `json:"implementation"`
	Profile          string   `json:"profile"`
	Runtime          string   `json:"runtime"`
	Nodes            int      `json:"nodes"`
	Killed           int      `json:"killed"`
	KillAtS          float64  `json:"kill_at_s"`
	JoinFailures     int      `json:"join_failures"`
	JoinConvergeS    *float64 `json:"join_converge_s"`
	DetectAllS       *float64 `json:"detect_all_s"`
	FalseLeaves      uint64   `json:"false_leaves"`
	CPUSTotal        float64  `json:"cpu_s_total"`
	CPUSAfterKill    float64  `json:"cpu_s_after_kill"`
	MaxRSSKiB        uint64   `json:"maxrss_kib"`
	BaselineRSSKiB   uint64   `json:"baseline_rss_kib"`
	UDPBytes         uint64   `json:"udp_bytes"`
	TCPBytes         uint64   `json:"tcp_bytes"`
	UDPBytesPerNodeS float64  `json:"udp_bytes_per_node_s"`
	TCPBytesPerNodeS float64  `json:"tcp_bytes_per_node_s"`
	ElapsedS         float64  `json:"elapsed_s"`
}

func main() {
	nodes := flag.Int("nodes", 16, "number of nodes")
	basePort := flag.Int("base-port", 20000, "port of node 0; node i listens on base-port + i")
	duration := flag.Float64("duration", 30, "length of the run, seconds from the joins")
	kill := flag.Int("kill", 1, "number of nodes shut down (without leaving) at -kill-at")
	killAt := flag.Float64("kill-at", 10, "when to kill them, seconds from the joins")
	profile := flag.String("profile", "lan", "lan, wan or local")
	agent := flag.Bool("agent", false, "run one node (-name, -port, -join) and print its events; see agentMain")
	agentName := flag.String("name", "node-0", "with -agent: the node's name")
	agentPort := flag.Int("port", 7946, "with -agent: UDP and TCP port on 127.0.0.1")
	agentJoin := flag.String("join", "", "with -agent: address to join once at start (empty: none)")
	flag.Parse()
	if *agent {
		if err := agentMain(*agentName, *agentPort, *agentJoin, *profile); err != nil {
			fmt.Fprintln(os.Stderr, "mlbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*nodes, *basePort, *duration, *kill, *killAt, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "mlbench:", err)
		os.Exit(1)
	}
}

// ------------------------------------------------------------ agent mode

// printer is an event delegate printing one JSON line per join and leave.
type printer struct{ mu sync.Mutex }

type eventLine struct {
	Event string `json:"event"`
	Node  string `json:"node"`
	Addr  string `json:"addr"`
}

func (p *printer) print(event string, n *memberlist.Node) {
	line, err := json.Marshal(eventLine{Event: event, Node: n.Name, Addr: n.Address()})
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

func (p *printer) NotifyJoin(n *memberlist.Node)   { p.print("join", n) }
func (p *printer) NotifyLeave(n *memberlist.Node)  { p.print("leave", n) }
func (p *printer) NotifyUpdate(n *memberlist.Node) {}

// presetConfig is memberlist's preset for a profile name.
func presetConfig(profile string) (*memberlist.Config, error) {
	switch profile {
	case "lan":
		return memberlist.DefaultLANConfig(), nil
	case "wan":
		return memberlist.DefaultWANConfig(), nil
	case "local":
		return memberlist.DefaultLocalConfig(), nil
	}
	return nil, fmt.Errorf("unknown profile %q", profile)
}

// agentMain runs one node on 127.0.0.1:port with the profile's preset, no
// counting transport (memberlist's own NetTransport), no log output, and
// blocks until the process is killed.
func agentMain(name string, port int, join, profile string) error {
	conf, err := presetConfig(profile)
	if err != nil {
		return err
	}
	conf.Name = name
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = port
	conf.AdvertisePort = port
	conf.Events = &printer{}
	conf.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(conf)
	if err != nil {
		return err
	}
	if join != "" {
		if _, err := ml.Join([]string{join}); err != nil {
			return fmt.Errorf("join %s: %v", join, err)
		}
	}
	// Until SIGINT/SIGTERM (the benchmark ends the others with SIGKILL).
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	return nil
}

func run(n, basePort int, duration float64, k int, killAtS float64, profile string) error {
	if n < 2 {
		return fmt.Errorf("need at least 2 nodes")
	}
	if k > n-1 {
		k = n - 1
	}
	if killAtS < 0 || duration < killAtS {
		return fmt.Errorf("need 0 <= -kill-at <= -duration")
	}
	// The process before any node exists: the runtime and the program.
	baselineRSS := statusKiB("VmRSS:")
	name := func(i int) string { return fmt.Sprintf("node-%d", i) }
	sh := &shared{doomed: map[string]bool{}}
	for i := 0; i < k; i++ {
		sh.doomed[name(i)] = true
	}
	quiet := log.New(io.Discard, "", 0)
	lists := make([]*memberlist.Memberlist, n)
	trans := make([]*countingTransport, n)
	views := make([]*view, n)
	for i := 0; i < n; i++ {
		conf, err := presetConfig(profile)
		if err != nil {
			return err
		}
		port := basePort + i
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"},
			BindPort:  port,
			Logger:    quiet,
		})
		if err != nil {
			return fmt.Errorf("%s: %v", name(i), err)
		}
		trans[i] = newCountingTransport(nt)
		views[i] = &view{sh: sh, alive: make([]bool, n)}
		conf.Name = name(i)
		conf.BindAddr = "127.0.0.1"
		conf.BindPort = port
		conf.AdvertisePort = port
		conf.Transport = trans[i]
		conf.Events = views[i]
		conf.Logger = quiet
		ml, err := memberlist.Create(conf)
		if err != nil {
			return fmt.Errorf("%s: %v", name(i), err)
		}
		lists[i] = ml
	}

	start := time.Now()
	seed := fmt.Sprintf("127.0.0.1:%d", basePort)
	var joinFailures, joinsReturned int64
	for i := 1; i < n; i++ {
		go func(ml *memberlist.Memberlist) {
			if _, err := ml.Join([]string{seed}); err != nil {
				atomic.AddInt64(&joinFailures, 1)
			}
			atomic.AddInt64(&joinsReturned, 1)
		}(lists[i])
	}

	secs := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	killAt := start.Add(secs(killAtS))
	end := start.Add(secs(duration))
	var joinConverge *float64
	for time.Now().Before(killAt) {
		if joinConverge == nil {
			all := true
			for _, v := range views {
				if v.size() != n {
					all = false
					break
				}
			}
			if all {
				s := time.Since(start).Seconds()
				joinConverge = &s
			}
		}
		sleepUntil(killAt)
	}
	// A join still in flight at the kill counts as failed: an overloaded
	// memberlist's Join can block long past the run (TCP timeouts), and
	// waiting for it here once hung the whole benchmark.
	failedJoins := atomic.LoadInt64(&joinFailures) + int64(n-1) - atomic.LoadInt64(&joinsReturned)

	cpuAtKill := cpuSeconds()
	killedAt := time.Now()
	atomic.StoreInt32(&sh.killed, 1)
	var udp, tcp uint64
	for i := 0; i < k; i++ {
		udp += atomic.LoadUint64(&trans[i].udpBytes)
		tcp += atomic.LoadUint64(&trans[i].tcpBytes)
	}
	// Shut the doomed nodes down in parallel; Shutdown closes the sockets
	// first, so a node is gone for its peers even if the rest of its
	// Shutdown blocks under overload, and the run does not wait long for it.
	var downs sync.WaitGroup
	for i := 0; i < k; i++ {
		downs.Add(1)
		go func(ml *memberlist.Memberlist) {
			defer downs.Done()
			ml.Shutdown()
		}(lists[i])
	}
	downed := make(chan struct{})
	go func() {
		downs.Wait()
		close(downed)
	}()
	select {
	case <-downed:
	case <-time.After(5 * time.Second):
	}
	var detectAll *float64
	for time.Now().Before(end) {
		if detectAll == nil {
			all := true
			for _, v := range views[k:] {
				if v.holdsAny(sh.doomed) {
					all = false
					break
				}
			}
			if all {
				s := time.Since(killedAt).Seconds()
				detectAll = &s
			}
		}
		sleepUntil(end)
	}
	elapsed := time.Since(start).Seconds()
	for i := k; i < n; i++ {
		udp += atomic.LoadUint64(&trans[i].udpBytes)
		tcp += atomic.LoadUint64(&trans[i].tcpBytes)
	}
	cpuTotal := cpuSeconds()
	perNodeS := float64(n) * elapsed
	r := report{
		Implementation:   "go-memberlist",
		Profile:          profile,
		Runtime:          "go GOMAXPROCS=default",
		Nodes:            n,
		Killed:           k,
		KillAtS:          killAtS,
		JoinFailures:     int(failedJoins),
		JoinConvergeS:    joinConverge,
		DetectAllS:       detectAll,
		FalseLeaves:      atomic.LoadUint64(&sh.falseLeaves),
		CPUSTotal:        cpuTotal,
		CPUSAfterKill:    cpuTotal - cpuAtKill,
		MaxRSSKiB:        statusKiB("VmHWM:"),
		BaselineRSSKiB:   baselineRSS,
		UDPBytes:         udp,
		TCPBytes:         tcp,
		UDPBytesPerNodeS: float64(udp) / perNodeS,
		TCPBytesPerNodeS: float64(tcp) / perNodeS,
		ElapsedS:         elapsed,
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	// Exit without shutting the survivors down one by one: an overloaded
	// memberlist can take long to stop, and exiting closes every socket.
	os.Exit(0)
	return nil
}

// sleepUntil sleeps one poll interval, or less if t comes first.
func sleepUntil(t time.Time) {
	d := time.Until(t)
	if d > poll {
		d = poll
	}
	if d > 0 {
		time.Sleep(d)
	}
}
