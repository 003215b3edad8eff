// zkgo: a Go client that follows the protocol of the seed's Go library
// (github.com/spenczar/zksync: RWMutex and DoubleBarrier), for
// t/021_go_interop.pl.  It is our own code, written from reading that
// library, on Debian's github.com/samuel/go-zookeeper (the client the
// library uses); it behaves as the library does where the tests look:
//
// RWMutex.  A lock node is CreateProtectedEphemeralSequential(PATH +
// "/write-") or "/read-", so its name is "_c_{32 hex}-write-{seq}".  The
// sequence of a child is the number after the last "read-" in its name,
// else after the last "write-"; a child with neither is "not a valid lock".
// A child whose name contains "read-" is a reader, else one that contains
// "write-" is a writer, else neither.  A writer compares itself with the
// lowest sequence among all children (so any child that is not a valid
// lock makes it fail); a reader with the lowest among the writers only
// (children that are neither are ignored).  It holds when its sequence is
// not above that lowest, else it waits (exists watch) for that lowest node
// to go and looks again.
//
// DoubleBarrier.  Enter makes the persistent parents, then the ephemeral
// node PATH/ID; counts every child but "ready": more than N is an error,
// exactly N makes the persistent node "ready", fewer waits for "ready".
// Exit lists the children but "ready", sorted by name: none left, done;
// only us: delete our node, "ready" (an error if it is gone) and the
// barrier's node, done; we are the lowest: wait for the highest to go;
// else delete our node and wait for the lowest to go; look again.
//
// One deviation: where the library's RWMutex returns an error and leaves
// its lock node until its session ends, this program removes the node, so
// that a test can go on with the same lock.
//
// Usage: zkgo HOSTS (comma-separated).  It prints READY once it has a
// session, then answers one command per stdin line, a line per event:
//
//	wlock PATH | rlock PATH   WAITING <node> <blocker> (once, if it waits),
//	                          then LOCKED <node> or ERROR <text>
//	unlock                    UNLOCKED or ERROR <text>
//	enter PATH ID N           ENTERED or ERROR <text>
//	exit                      EXITED or ERROR <text>
//	quit                      BYE, and exits
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/samuel/go-zookeeper/zk"
)

var (
	openACL        = zk.WorldACL(zk.PermAll)
	errNotValid    = errors.New("not a valid lock")
	errNotHeld     = errors.New("not currently holding a lock")
	errNotEntered  = errors.New("not in a double barrier")
	quietLogger    = logger{}
	conn           *zk.Conn
	heldLock       string
	barrierPath    string
	barrierID      string
	waitingPrinted bool
)

type logger struct{}

func (logger) Printf(string, ...interface{}) {}

func say(format string, args ...interface{}) {
	fmt.Printf(format+"\n", args...)
	os.Stdout.Sync()
}

// makeParents creates every ancestor of p that is missing, persistent.
func makeParents(p string) error {
	dir := ""
	parts := strings.Split(p, "/")
	for _, part := range parts[1 : len(parts)-1] {
		dir += "/" + part
		if _, err := conn.Create(dir, nil, 0, openACL); err != nil && err != zk.ErrNodeExists {
			return err
		}
	}
	return nil
}

// sequenceOf reads a lock child's sequence as the library does.
func sequenceOf(name string) (int, error) {
	if i := strings.LastIndex(name, "read-"); i >= 0 {
		return strconv.Atoi(name[i+len("read-"):])
	}
	if i := strings.LastIndex(name, "write-"); i >= 0 {
		return strconv.Atoi(name[i+len("write-"):])
	}
	return -1, errNotValid
}

func isWriter(name string) bool {
	return !strings.Contains(name, "read-") && strings.Contains(name, "write-")
}

// awaitGone returns once p does not exist (at once if it is gone).
func awaitGone(p string) error {
	there, _, ch, err := conn.ExistsW(p)
	if err != nil || !there {
		return err
	}
	ev := <-ch
	return ev.Err
}

func lock(dir string, write bool) (string, error) {
	kind := "read-"
	if write {
		kind = "write-"
	}
	node, err := conn.CreateProtectedEphemeralSequential(dir+"/"+kind, nil, openACL)
	if err == zk.ErrNoNode {
		if err = makeParents(dir + "/" + kind); err == nil {
			node, err = conn.CreateProtectedEphemeralSequential(dir+"/"+kind, nil, openACL)
		}
	}
	if err != nil {
		return "", err
	}
	mine, err := sequenceOf(path.Base(node))
	if err != nil {
		return node, err
	}
	waitingPrinted = false
	for {
		children, _, err := conn.Children(dir)
		if err != nil {
			return node, err
		}
		lowest, lowestSeq := "", int(^uint(0)>>1)
		for _, c := range children {
			if !write && !isWriter(c) {
				continue
			}
			seq, err := sequenceOf(c)
			if err != nil {
				return node, err
			}
			if seq < lowestSeq {
				lowest, lowestSeq = c, seq
			}
		}
		if mine <= lowestSeq {
			return node, nil
		}
		if !waitingPrinted {
			say("WAITING %s %s", path.Base(node), lowest)
			waitingPrinted = true
		}
		if err := awaitGone(dir + "/" + lowest); err != nil {
			return node, err
		}
	}
}

func enter(dir, id string, n int) error {
	me := dir + "/" + id
	if err := makeParents(me); err != nil {
		return err
	}
	if _, err := conn.Create(me, nil, zk.FlagEphemeral, openACL); err != nil {
		return err
	}
	children, _, err := conn.Children(dir)
	if err != nil {
		return err
	}
	count := 0
	for _, c := range children {
		if c != "ready" {
			count++
		}
	}
	if count > n {
		conn.Delete(me, -1)
		return fmt.Errorf("too many participants: %d, expected %d", count, n)
	}
	if count == n {
		if _, err := conn.Create(dir+"/ready", nil, 0, openACL); err != nil && err != zk.ErrNodeExists {
			return err
		}
		return nil
	}
	for {
		there, _, ch, err := conn.ExistsW(dir + "/ready")
		if err != nil {
			return err
		}
		if there {
			return nil
		}
		<-ch
	}
}

func exit(dir, id string) error {
	me := dir + "/" + id
	for {
		children, stat, err := conn.Children(dir)
		if err == zk.ErrNoNode {
			return nil
		}
		if err != nil {
			return err
		}
		var left []string
		for _, c := range children {
			if c != "ready" {
				left = append(left, c)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if len(left) == 1 && left[0] == id {
			if err := conn.Delete(me, -1); err != nil {
				return fmt.Errorf("delete own node: %v", err)
			}
			if err := conn.Delete(dir+"/ready", -1); err != nil {
				return fmt.Errorf("delete ready: %v", err)
			}
			if err := conn.Delete(dir, stat.Version); err != nil {
				return fmt.Errorf("delete barrier: %v", err)
			}
			return nil
		}
		sort.Strings(left)
		watch := left[0]
		if left[0] == id {
			watch = left[len(left)-1]
		} else if err := conn.Delete(me, -1); err != nil && err != zk.ErrNoNode {
			return err
		}
		if err := awaitGone(dir + "/" + watch); err != nil {
			return err
		}
	}
}

func answer(err error, ok string) {
	if err != nil {
		say("ERROR %s", strings.ReplaceAll(err.Error(), "\n", " "))
	} else {
		say("%s", ok)
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: zkgo HOSTS")
		os.Exit(2)
	}
	var events <-chan zk.Event
	var err error
	conn, events, err = zk.Connect(strings.Split(os.Args[1], ","), 4*time.Second,
		zk.WithLogger(quietLogger))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for ev := range events {
		if ev.State == zk.StateHasSession {
			break
		}
	}
	go func() {
		for range events {
		}
	}()
	say("READY")

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case (f[0] == "wlock" || f[0] == "rlock") && len(f) == 2:
			if heldLock != "" {
				answer(errors.New("already holding a lock"), "")
				continue
			}
			node, err := lock(f[1], f[0] == "wlock")
			if err != nil && node != "" {
				conn.Delete(node, -1)
			} else if err == nil {
				heldLock = node
			}
			answer(err, "LOCKED "+path.Base(node))
		case f[0] == "unlock":
			if heldLock == "" {
				answer(errNotHeld, "")
				continue
			}
			err := conn.Delete(heldLock, -1)
			if err == nil {
				heldLock = ""
			}
			answer(err, "UNLOCKED")
		case f[0] == "enter" && len(f) == 4:
			n, err := strconv.Atoi(f[3])
			if err == nil {
				err = enter(f[1], f[2], n)
			}
			if err == nil {
				barrierPath, barrierID = f[1], f[2]
			}
			answer(err, "ENTERED")
		case f[0] == "exit":
			if barrierPath == "" {
				answer(errNotEntered, "")
				continue
			}
			err := exit(barrierPath, barrierID)
			barrierPath = ""
			answer(err, "EXITED")
		case f[0] == "quit":
			say("BYE")
			conn.Close()
			return
		default:
			answer(fmt.Errorf("unknown command %q", in.Text()), "")
		}
	}
	conn.Close()
}
