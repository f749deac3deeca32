package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/widgetstore/widgetstore/internal/checkout"
)

// printVersion prints what -version answers: the build (the module's
// version, and the VCS revision go build stamped in it) and the DBOS
// application version, which decides which pending workflows this build
// recovers: two builds with the same one must run the same workflow code.
func printVersion(w io.Writer) error {
	module, revision, modified, goVersion := "(unknown)", "(unknown)", "", "(unknown)"
	if info, ok := debug.ReadBuildInfo(); ok {
		module, goVersion = info.Main.Path+" "+info.Main.Version, info.GoVersion
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
	}
	_, err := fmt.Fprintf(w, "widgetstore: %s, revision %s%s, %s\nDBOS application version: %s\n",
		module, revision, modified, goVersion, checkout.ApplicationVersion)
	return err
}
