// Command mlnode runs a single hashicorp/memberlist node and reports its view
// of the cluster as JSON lines on stdout. It is the Go half of the headcount
// interop harness; see interop/README.md.
//
// Events (one JSON object per line on stdout):
//
//	{"event":"join"|"leave"|"update","node":NAME,"addr":"IP:PORT","state":"alive"|"suspect"|"dead"|"left"}
//	{"event":"user","msg":TEXT}
//	{"event":"members","members":[{"node":NAME,"addr":"IP:PORT","state":STATE},...]}
//
// Commands (one per line on stdin):
//
//	send-reliable NAME TEXT      SendReliable (TCP) user message to NAME
//	send-best-effort NAME TEXT   SendBestEffort (UDP) user message to NAME
//	members                      print a "members" event
//	leave                        graceful Leave(timeout); the process keeps running
//	quit                         Shutdown WITHOUT leaving (peers see a failure), exit 0
//
// To join a Serf cluster pass -delegate-versions 2,5,5 (Serf rejects nodes
// whose delegate version range does not overlap its own [2,5]).
//
// SIGINT/SIGTERM and EOF on stdin (unless -stdin=false) do Leave(timeout) +
// Shutdown and exit 0. Logs go to stderr.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// ---------------------------------------------------------------- output

type memberJSON struct {
	Node  string `json:"node"`
	Addr  string `json:"addr"`
	State string `json:"state"`
}

type nodeEvent struct {
	Event string `json:"event"`
	Node  string `json:"node"`
	Addr  string `json:"addr"`
	State string `json:"state"`
}

type userEvent struct {
	Event string `json:"event"`
	Msg   string `json:"msg"`
}

type membersEvent struct {
	Event   string       `json:"event"`
	Members []memberJSON `json:"members"`
}

var (
	outMu  sync.Mutex
	outEnc = json.NewEncoder(os.Stdout)
	logger = log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
)

func emit(v interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	outEnc.SetEscapeHTML(false)
	if err := outEnc.Encode(v); err != nil { // Encode appends '\n'
		logger.Printf("[ERR] mlnode: writing stdout: %v", err)
	}
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// memberlist (at least v0.2.2, Debian's) never updates the exported
// Node.State: the real state lives in the unexported nodeState.State field of
// the struct that embeds the Node (memberlist passes &nodeState.Node to the
// event delegate and returns it from Members()). Find that field's offset via
// reflection on Memberlist.nodes ([]*nodeState) so we can read it.
var stateOffset = func() uintptr {
	f, ok := reflect.TypeOf(memberlist.Memberlist{}).FieldByName("nodes")
	if !ok || f.Type.Kind() != reflect.Slice || f.Type.Elem().Kind() != reflect.Ptr {
		return 0
	}
	ns := f.Type.Elem().Elem()
	if ns.Kind() != reflect.Struct || ns.NumField() == 0 || ns.Field(0).Type != reflect.TypeOf(memberlist.Node{}) ||
		ns.Field(0).Offset != 0 {
		return 0
	}
	sf, ok := ns.FieldByName("State")
	if !ok || sf.Type != reflect.TypeOf(memberlist.NodeStateType(0)) || sf.Offset == 0 {
		return 0
	}
	return sf.Offset
}()

// nodeState returns the real state of a node handed out by memberlist.
func nodeState(n *memberlist.Node) memberlist.NodeStateType {
	if n.State != memberlist.StateAlive || stateOffset == 0 {
		return n.State
	}
	// n points at the first field (offset 0) of a memberlist nodeState.
	return *(*memberlist.NodeStateType)(unsafe.Pointer(uintptr(unsafe.Pointer(n)) + stateOffset))
}

func nodeAddr(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

func describe(n *memberlist.Node) string {
	return fmt.Sprintf("%s %s state=%s vsn=[pmin=%d pmax=%d pcur=%d dmin=%d dmax=%d dcur=%d] meta=%q",
		n.Name, nodeAddr(n), stateName(nodeState(n)), n.PMin, n.PMax, n.PCur, n.DMin, n.DMax, n.DCur, n.Meta)
}

// ---------------------------------------------------------------- delegates

// tracker remembers nodes that memberlist reported as dead/left, because
// Memberlist.Members() only returns alive and suspect nodes.
type tracker struct {
	mu   sync.Mutex
	gone map[string]memberJSON
}

func (t *tracker) event(kind string, n *memberlist.Node) {
	ev := nodeEvent{Event: kind, Node: n.Name, Addr: nodeAddr(n), State: stateName(nodeState(n))}
	t.mu.Lock()
	if st := nodeState(n); st == memberlist.StateDead || st == memberlist.StateLeft {
		t.gone[n.Name] = memberJSON{Node: ev.Node, Addr: ev.Addr, State: ev.State}
	} else {
		delete(t.gone, n.Name)
	}
	t.mu.Unlock()
	logger.Printf("[INFO] mlnode: %s %s", kind, describe(n))
	emit(ev)
}

func (t *tracker) NotifyJoin(n *memberlist.Node)   { t.event("join", n) }
func (t *tracker) NotifyLeave(n *memberlist.Node)  { t.event("leave", n) }
func (t *tracker) NotifyUpdate(n *memberlist.Node) { t.event("update", n) }

type delegate struct{ meta []byte }

func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return d.meta[:limit]
	}
	return d.meta
}

func (d *delegate) NotifyMsg(b []byte) {
	// b is only valid during this call; string() copies it.
	emit(userEvent{Event: "user", Msg: string(b)})
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// ---------------------------------------------------------------- flags

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func main() {
	os.Exit(run())
}

func run() int {
	var joins listFlag
	name := flag.String("name", "", "node name (default: hostname-bind)")
	bind := flag.String("bind", "127.0.0.1:0", "bind IP:PORT (port 0 = pick a free port; the self join event reports it)")
	profile := flag.String("profile", "local", "memberlist config preset: local|lan|wan")
	meta := flag.String("meta", "", "node metadata (NodeMeta)")
	protocol := flag.Int("protocol", 0, "memberlist ProtocolVersion to speak (0 = library default, 2)")
	compress := flag.String("compression", "default", "EnableCompression: default|on|off")
	dvsn := flag.String("delegate-versions", "", "DelegateProtocolMin,Max,Version advertised (default 0,0,0; use 2,5,5 to join Serf, which requires an overlap with [2,5])")
	joinTimeout := flag.Duration("join-timeout", 5*time.Second, "keep retrying -join until one peer answers or this passes (0 = one attempt)")
	leaveTimeout := flag.Duration("leave-timeout", 2*time.Second, "timeout for graceful Leave")
	useStdin := flag.Bool("stdin", true, "read commands from stdin; EOF means leave+exit. Use -stdin=false when stdin is /dev/null")
	flag.Var(&joins, "join", "address to join, IP:PORT (repeatable or comma separated)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mlnode: unexpected arguments: %v\n", flag.Args())
		return 2
	}

	var conf *memberlist.Config
	switch *profile {
	case "local":
		conf = memberlist.DefaultLocalConfig()
	case "lan":
		conf = memberlist.DefaultLANConfig()
	case "wan":
		conf = memberlist.DefaultWANConfig()
	default:
		fmt.Fprintf(os.Stderr, "mlnode: bad -profile %q (want local|lan|wan)\n", *profile)
		return 2
	}

	host, portStr, err := net.SplitHostPort(*bind)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mlnode: bad -bind %q: %v\n", *bind, err)
		return 2
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		fmt.Fprintf(os.Stderr, "mlnode: bad -bind port %q\n", portStr)
		return 2
	}
	conf.BindAddr = host
	conf.BindPort = port
	conf.AdvertiseAddr = ""
	conf.AdvertisePort = port
	if *name != "" {
		conf.Name = *name
	} else {
		conf.Name = conf.Name + "-" + *bind
	}
	if *protocol != 0 {
		conf.ProtocolVersion = uint8(*protocol)
	}
	switch *compress {
	case "default":
	case "on":
		conf.EnableCompression = true
	case "off":
		conf.EnableCompression = false
	default:
		fmt.Fprintf(os.Stderr, "mlnode: bad -compression %q (want default|on|off)\n", *compress)
		return 2
	}

	if *dvsn != "" {
		var v [3]uint8
		parts := strings.Split(*dvsn, ",")
		if len(parts) != 3 {
			fmt.Fprintf(os.Stderr, "mlnode: bad -delegate-versions %q (want MIN,MAX,CUR)\n", *dvsn)
			return 2
		}
		for i, p := range parts {
			x, err := strconv.ParseUint(strings.TrimSpace(p), 10, 8)
			if err != nil {
				fmt.Fprintf(os.Stderr, "mlnode: bad -delegate-versions %q: %v\n", *dvsn, err)
				return 2
			}
			v[i] = uint8(x)
		}
		conf.DelegateProtocolMin, conf.DelegateProtocolMax, conf.DelegateProtocolVersion = v[0], v[1], v[2]
	}

	tr := &tracker{gone: map[string]memberJSON{}}
	conf.Events = tr
	conf.Delegate = &delegate{meta: []byte(*meta)}
	conf.LogOutput = nil
	conf.Logger = logger

	ml, err := memberlist.Create(conf)
	if err != nil {
		logger.Printf("[ERR] mlnode: create: %v", err)
		return 1
	}
	self := ml.LocalNode()
	logger.Printf("[INFO] mlnode: started %s profile=%s compression=%v state-offset=%d", describe(self), *profile, conf.EnableCompression, stateOffset)

	done := make(chan int, 1)
	var once sync.Once
	finish := func(graceful bool, code int) {
		once.Do(func() {
			if graceful {
				if err := ml.Leave(*leaveTimeout); err != nil {
					logger.Printf("[WARN] mlnode: leave: %v", err)
				}
			}
			if err := ml.Shutdown(); err != nil {
				logger.Printf("[WARN] mlnode: shutdown: %v", err)
			}
			done <- code
		})
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logger.Printf("[INFO] mlnode: got %v, leaving", s)
		go finish(true, 0)
		<-sigs
		logger.Printf("[WARN] mlnode: second signal, exiting now")
		os.Exit(1)
	}()

	if len(joins) > 0 {
		go func() {
			// Retry until at least one peer answered (peers may still be
			// starting up) or -join-timeout passes; failure is not fatal.
			deadline := time.Now().Add(*joinTimeout)
			for {
				n, err := ml.Join(joins)
				if n > 0 {
					logger.Printf("[INFO] mlnode: joined %d of %v (err: %v)", n, []string(joins), err)
					break
				}
				if time.Now().After(deadline) {
					logger.Printf("[WARN] mlnode: join %v failed, giving up: %v", []string(joins), err)
					break
				}
				logger.Printf("[WARN] mlnode: join %v failed, retrying: %v", []string(joins), err)
				time.Sleep(250 * time.Millisecond)
			}
		}()
	}

	if *useStdin {
		go commands(ml, tr, os.Stdin, *leaveTimeout, finish)
	}
	return <-done
}

// ---------------------------------------------------------------- commands

func findNode(ml *memberlist.Memberlist, name string) *memberlist.Node {
	for _, n := range ml.Members() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func commands(ml *memberlist.Memberlist, tr *tracker, in io.Reader, leaveTimeout time.Duration, finish func(bool, int)) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		parts := strings.SplitN(strings.TrimLeft(line, " \t"), " ", 3)
		switch cmd := parts[0]; cmd {
		case "send-reliable", "send-best-effort":
			if len(parts) < 2 {
				logger.Printf("[ERR] mlnode: usage: %s NAME TEXT", cmd)
				continue
			}
			text := ""
			if len(parts) == 3 {
				text = parts[2]
			}
			n := findNode(ml, parts[1])
			if n == nil {
				logger.Printf("[ERR] mlnode: %s: no live member named %q", cmd, parts[1])
				continue
			}
			var err error
			if cmd == "send-reliable" {
				err = ml.SendReliable(n, []byte(text))
			} else {
				err = ml.SendBestEffort(n, []byte(text))
			}
			if err != nil {
				logger.Printf("[ERR] mlnode: %s to %s: %v", cmd, n.Name, err)
			} else {
				logger.Printf("[INFO] mlnode: %s to %s: %d bytes", cmd, n.Name, len(text))
			}
		case "members":
			emit(membersEvent{Event: "members", Members: snapshot(ml, tr)})
		case "leave":
			if err := ml.Leave(leaveTimeout); err != nil {
				logger.Printf("[WARN] mlnode: leave: %v", err)
			} else {
				logger.Printf("[INFO] mlnode: left")
			}
		case "quit":
			logger.Printf("[INFO] mlnode: quit (shutdown without leave)")
			finish(false, 0)
			return
		default:
			logger.Printf("[ERR] mlnode: unknown command %q (want send-reliable|send-best-effort|members|leave|quit)", cmd)
		}
	}
	if err := sc.Err(); err != nil {
		logger.Printf("[WARN] mlnode: reading stdin: %v", err)
	}
	logger.Printf("[INFO] mlnode: stdin closed, leaving")
	finish(true, 0)
}

func snapshot(ml *memberlist.Memberlist, tr *tracker) []memberJSON {
	out := []memberJSON{}
	seen := map[string]bool{}
	for _, n := range ml.Members() {
		seen[n.Name] = true
		out = append(out, memberJSON{Node: n.Name, Addr: nodeAddr(n), State: stateName(nodeState(n))})
	}
	tr.mu.Lock()
	for name, m := range tr.gone {
		if !seen[name] {
			out = append(out, m)
		}
	}
	tr.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
