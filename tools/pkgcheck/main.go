// Command pkgcheck checks that the project's one list of Debian packages
// (scripts/debian-packages.txt) provides everything the project uses from
// the system: every program that a script, a Makefile recipe or Go code
// (product or test) runs, every absolute system path that Go code names,
// and every include directory that api/*.proto needs.
//
// scripts/test.sh runs it after installing the list, so `make test` fails
// when something is used that a fresh machine would not get: the guard
// for the class of bug where CI passed only because a package had been
// installed by hand (libprotobuf-dev once).
//
//	go run ./tools/pkgcheck [-root .] [-v]
//
// A use is fine when the file it resolves to belongs to a package on the
// list or to one that a listed package pulls in (its dependencies,
// transitively), or to a package every Debian system has (Essential: yes or
// Priority: required), or when the program is one of the few that do not
// come from Debian (the Go toolchain, NVIDIA's tools, vhpc's own binaries).
// Exit status: 0 all provided, 1 problems found (each printed with where
// it is used and what to add), 2 the check itself could not run.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	root := flag.String("root", ".", "repository root")
	verbose := flag.Bool("v", false, "print every use and the package that provides it")
	flag.Parse()
	os.Exit(run(*root, *verbose, &dpkg{}, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(root string, verbose bool, db packageDB, stdout, stderr io.Writer) int {
	rep, err := check(root, db)
	if err != nil {
		fmt.Fprintf(stderr, "pkgcheck: %v\n", err)
		return 2
	}
	rep.print(stdout, verbose)
	if len(rep.Problems) > 0 {
		return 1
	}
	return 0
}
