package chaos_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDiskFullHeals runs the shop on SQLite in a tmpfs of 8 MiB and fills
// it while a checkout waits for its payment, so the checkout's timeout
// finds the disk full: its cancellation and its outcome cannot be written.
// Once space is freed the order must settle (cancelled, stock released)
// without a restart, and the shop must say it is not ready while its
// database refuses writes. It needs root, for the mount.
func TestDiskFullHeals(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("TestDiskFullHeals mounts a tmpfs and needs root, which CI=true requires")
		}
		t.Skip("TestDiskFullHeals mounts a tmpfs: run it as root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })

	s := newShop(t, "sqlite:"+filepath.Join(dir, "shop.db"), "-payment-timeout", "2s", "-dispatch-steps", "2", "-dispatch-interval", "10ms")
	s.run()
	stock := s.inventory(1)
	paymentID := s.mustPost("/checkout/disk-full")
	order := s.orderByPayment(paymentID)

	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	time.Sleep(3 * time.Second) // past the payment deadline, with the disk full
	if o := s.order(strconv.FormatInt(order.ID, 10)); o.Status != "PENDING" {
		t.Fatalf("with the disk full the order became %s: the test proves nothing", o.Status)
	}
	if status, body, _ := s.get("/healthz"); status != 503 {
		t.Errorf("GET /healthz with the disk full: %d %s, want 503", status, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	o := s.awaitOrder(strconv.FormatInt(order.ID, 10), "cancelled as unpaid", isCancelled)
	t.Logf("the order settled %v after the space was freed", time.Since(healed).Round(time.Millisecond))
	if o.CancelReason != "payment not received in time" {
		t.Errorf("order %+v, want cancelled as unpaid", o)
	}
	if status, body, _ := s.get("/healthz"); status != 200 {
		t.Errorf("GET /healthz with space again: %d %s, want 200", status, body)
	}
	if got := s.inventory(1); got != stock {
		t.Errorf("stock %d, want %d: the unpaid order's stock is released", got, stock)
	}
	if s.runs != 1 || !strings.Contains(s.output(), "resumed a checkout left pending") {
		t.Errorf("the order settled, but not by the running shop resuming its checkout (runs: %d)", s.runs)
	}
	s.audit(1)
}

// fill writes a file at path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}
