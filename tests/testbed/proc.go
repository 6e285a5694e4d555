package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// proc is a server the test bed runs as a local process: in its own process group, killed with
// the test process (or, detached, in its own session, outliving it), its output in a log file.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
}

// startProc starts cmd as name, its output going to the file log.
func startProc(name, log string, cmd *exec.Cmd, detached bool) (*proc, error) {
	logf, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// errExited: the process exited before it was ready.
var errExited = errors.New("exited")

// waitReady polls ready every interval until it says so. When the process exits, ready fails,
// ctx ends or timeout passes, the process is stopped and the error ends with its log's last lines.
func (p *proc) waitReady(ctx context.Context, timeout, interval time.Duration, ready func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	fail := func(why string) error {
		p.stop()
		return fmt.Errorf("%s %s; its log ends:\n%s", p.name, why, lastLines(p.log, 15))
	}
	for {
		ok, err := ready()
		switch {
		case err != nil:
			return fail(err.Error())
		case ok:
			return nil
		case time.Now().After(deadline):
			return fail(fmt.Sprintf("not ready in %s", timeout))
		}
		select {
		case <-p.done:
			p.stop()
			return fmt.Errorf("%s %w; its log ends:\n%s", p.name, errExited, lastLines(p.log, 15))
		case <-ctx.Done():
			return fail(ctx.Err().Error())
		case <-time.After(interval):
		}
	}
}

// httpOK is a readiness check: url answers 200 to GET with client.
func httpOK(client interface {
	Get(string) (*http.Response, error)
}, url string) func() (bool, error) {
	return func() (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}
}

// stop kills the process group and waits for the process.
func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// terminate asks the process to end (SIGTERM), killing its group after grace.
func (p *proc) terminate(grace time.Duration) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.stop()
	}
}

// pid is the process's (the leader of its group).
func (p *proc) pid() int { return p.cmd.Process.Pid }
