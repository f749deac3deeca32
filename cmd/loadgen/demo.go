package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// DBOS's own Go demo shop (dbos-demo-apps, golang/widget-store), built by
// cmd/loadgen/demo/build.sh, is the reference a comparison needs measured
// in the same run: a -shop labelled demoLabel is one. It speaks the seed's
// protocol, as the shop does, and loadgen drives it the same way; what
// differs is how it is started and asked, here.
const demoLabel = "demo"

// demoStock is what the demo's shelf is topped up to: its /restock sets
// 100, which loadgen's restocks would fight, so a demo run never restocks
// and never runs out.
const demoStock = 100_000_000

// startDemo starts DBOS's demo on the run's PostgreSQL database: the
// migrations beside the binary (build.sh puts them in migrations/), the
// stock topped up, DBOS_SYSTEM_DATABASE_URL, a free loopback port in PORT.
// Its address comes on the channel once GET /product answers.
func (p *shopProcess) startDemo(ctx context.Context, bin shopBinary) (<-chan string, error) {
	if err := migrateDemo(ctx, p.db.url, filepath.Join(filepath.Dir(bin.Path), "migrations")); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin.Path)
	// GIN_MODE=release only spares the start its debug banner; its request
	// log and DBOS's debug log stay as the demo ships them.
	cmd.Env = append(os.Environ(), "DBOS_SYSTEM_DATABASE_URL="+p.db.url, "PORT="+strconv.Itoa(port), "GIN_MODE=release")
	if err := p.start(cmd); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	listening := make(chan string, 1)
	go func() {
		client := newHTTPClient(time.Second, 1)
		defer client.CloseIdleConnections()
		for {
			select {
			case <-p.exited:
				return
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			if resp, err := client.Get("http://" + addr + "/product"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					listening <- addr
					return
				}
			}
		}
	}()
	return listening, nil
}

// migrateDemo runs the demo's migrations, in order, on its fresh database,
// and tops its stock up.
func migrateDemo(ctx context.Context, dbURL, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.up.sql"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("the demo's migrations: none in %s (cmd/loadgen/demo/build.sh puts them beside the binary)", dir)
	}
	slices.Sort(files)
	conn, err := connectPG(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, file := range files {
		sql, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("the demo's migration %s: %w", filepath.Base(file), err)
		}
	}
	if _, err := conn.Exec(ctx, "UPDATE products SET inventory = $1", demoStock); err != nil {
		return fmt.Errorf("topping up the demo's stock: %w", err)
	}
	return nil
}

// freePort is a loopback port free a moment ago, for a shop that cannot
// listen on :0 and say where.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pendingWorkflows counts the PENDING workflows in the run's database, for
// a shop without the operator's API (the demo). Its queries are loadgen's
// own commits, subtracted from the run's.
func (c *pgCounters) pendingWorkflows(ctx context.Context) (int, error) {
	var n int
	if err := c.dbConn.QueryRow(ctx, "SELECT count(*) FROM dbos.workflow_status WHERE status = 'PENDING'").Scan(&n); err != nil {
		return 0, fmt.Errorf("counting the pending workflows: %w", err)
	}
	c.ownCommits++
	return n, nil
}
