// Command widgetstore serves the widget store: a shop whose checkout is a
// durable workflow that survives a crash at any moment.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errLogged) {
			fmt.Fprintln(os.Stderr, "widgetstore:", err)
		}
		os.Exit(1)
	}
}
